"""MaskViewer: per-layer pruning masks on a canvas, sparsity bars, live re-pruning and diffs.

The selected layer's mask travels to the browser bit-packed (``numpy.packbits``: 1 bit per
weight) as an anywidget binary traitlet; ``widgets/mask.js`` draws density tiles for big layers
and exact bits once the shown window fits the canvas (:data:`CANVAS` cells). The window is
shared state: the browser sends it when the user zooms or pans, Python sets it with
:meth:`MaskViewer.zoom`, and Python honours it (summary, :meth:`MaskViewer.window_bits`, the
static figure of a saved notebook).

Threads: a MaskViewer is driven from the kernel's main thread (widget callbacks); it reads its
Masks and, for live re-pruning, calls the pruning methods on its model (never changing it).
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator
from typing import Any

import anywidget
import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import traitlets
from torch import nn

from nasviz.errors import ConfigError, NasvizError
from nasviz.prune import METHODS, Masks
from nasviz.ui._base import View, static_asset
from nasviz.ui._figure import FigureSlot, PlotWidget
from nasviz.viz._compat import keyword_only_after
from nasviz.viz._masks import (
    layer_sparsity_figure,
    layer_sparsity_info,
    mask_grid,
    masks_figure,
)

__all__ = ["CANVAS", "MaskCanvas", "MaskViewer", "pack_mask", "unpack_mask"]

_BARS_WIDTH = 380  # px of the sparsity bar chart
#: (rows, cols) of canvas pixels (``H``, ``W`` in widgets/mask.js): a window of at most this
#: many cells per axis is drawn as exact bits, one cell per block of pixels.
CANVAS = (360, 560)
MODES = ("mask", "diff")


def pack_mask(mask: Any) -> tuple[int, int, bytes]:
    """``(rows, cols, bits)``: the mask's 2-D grid packed 8 weights per byte, MSB first."""
    grid = mask_grid(mask)
    return grid.shape[0], grid.shape[1], np.packbits(grid.ravel()).tobytes()


def unpack_mask(bits: bytes, rows: int, cols: int) -> np.ndarray:
    """Inverse of :func:`pack_mask`: a (rows, cols) bool array."""
    flat = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=rows * cols)
    return flat.astype(bool).reshape(rows, cols)


class MaskCanvas(anywidget.AnyWidget):
    """The canvas view of one mask (front end: ``widgets/mask.js``)."""

    _esm = static_asset("mask.js")
    _css = static_asset("mask.css")
    layer = traitlets.Unicode("").tag(sync=True)
    rows = traitlets.Int(0).tag(sync=True)
    cols = traitlets.Int(0).tag(sync=True)
    bits = traitlets.Bytes(b"").tag(sync=True)
    other_bits = traitlets.Bytes(b"").tag(sync=True)
    mode = traitlets.Unicode("mask").tag(sync=True)
    window = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)


class MaskViewer(View):
    """Look at pruning masks: per-layer heatmaps, sparsity bars, a live sparsity slider, a
    method picker and a diff mode against a second mask.

    Args:
        source: a Masks, or a model (masks are computed with ``method`` at ``sparsity``).
        model: the model the masks were made for; needed for the slider and method picker
            when ``source`` is a Masks.
        method: a name from :data:`nasviz.prune.METHODS`.
        sparsity: initial sparsity for live pruning (defaults to the masks' own, or 0.5).
        other: a second Masks (another method, another lottery round) for diff mode.
        layer: the layer shown first (default: the largest).
        mode: ``"mask"``, or ``"diff"`` to open on where ``masks`` and ``other`` disagree.

    Errors from the sparsity slider or the method picker (e.g. ``channels`` at a ratio that
    would remove every channel of a layer) are shown under the controls, and the controls go
    back to the last masks that worked; nothing else changes.
    """

    @keyword_only_after("method", "sparsity", "other", "layer", "mode")
    def __init__(
        self,
        source: Masks | nn.Module,
        model: nn.Module | None = None,
        *,
        method: str = "magnitude",
        sparsity: float | None = None,
        other: Masks | None = None,
        layer: str | None = None,
        mode: str = "mask",
    ):
        if method not in METHODS:
            raise ConfigError(f"method must be one of {sorted(METHODS)}, got {method!r}")
        if isinstance(source, nn.Module):
            model, masks = source, None
        elif isinstance(source, Masks):
            masks = source
            if model is not None:
                masks.check(model)
        else:
            raise ConfigError(f"MaskViewer shows a Masks or a model, got {type(source).__name__}")
        if other is not None and not isinstance(other, Masks):
            raise ConfigError(f"other must be a Masks, got {type(other).__name__}")
        if mode not in MODES or (mode == "diff" and other is None):
            raise ConfigError("mode is 'mask', or 'diff' when the viewer was given other= masks")
        self.model, self.method, self.other = model, method, other
        start = (
            sparsity
            if sparsity is not None
            else float((masks.meta if masks else {}).get("sparsity", 0.5))
        )
        self.masks: Masks = masks if masks is not None else METHODS[method](model, start)
        self.sparsity = start
        self.window: tuple[int, int, int, int] = (0, 0, 0, 0)  # set by _send
        self.layer = (
            layer if layer is not None else max(self.masks, key=lambda n: self.masks[n].numel())
        )
        if self.layer not in self.masks:
            raise ConfigError(f"layer {self.layer!r} is not masked; masked: {list(self.masks)[:8]}")
        self.canvas = MaskCanvas()
        # the bar chart's figure widget is made when the view is first shown
        self.bars_slot = FigureSlot(self._new_bars)
        live = model is not None
        self.slider = w.FloatSlider(
            value=start,
            min=0.0,
            max=0.99,
            step=0.01,
            description="sparsity",
            continuous_update=False,
            disabled=not live,
            tooltip=None if live else "pass model= to re-prune live",
            layout=w.Layout(width="380px", min_width="320px", flex="0 0 auto"),
        )
        self.picker = w.Dropdown(
            options=sorted(METHODS), value=method, description="method", disabled=not live
        )
        self.layers = w.Dropdown(options=list(self.masks), value=self.layer, description="layer")
        self.mode = w.ToggleButtons(options=list(MODES), value=mode, disabled=other is None)
        self.summary = w.HTML()
        self.error = w.HTML()  # the last failed re-pruning, in red; empty when all is well
        self._quiet = False  # True while the viewer itself moves its controls back
        self.slider.observe(lambda ch: self._control(self.set_sparsity, ch["new"]), names="value")
        self.picker.observe(lambda ch: self._control(self.set_method, ch["new"]), names="value")
        self.layers.observe(lambda ch: self._control(self.select, ch["new"]), names="value")
        self.mode.observe(lambda ch: self._control(self.set_mode, ch["new"]), names="value")
        self.canvas.observe(self._on_window, names="window")
        controls = w.HBox(
            [self.picker, self.slider, self.layers, self.mode],
            layout=w.Layout(flex_flow="row wrap", align_items="center"),
        )
        views = w.HBox(
            [self.canvas, self.bars_slot.box],
            layout=w.Layout(flex_flow="row wrap", align_items="flex-start"),
        )
        self.bars_slot.box.layout = w.Layout(width=f"{_BARS_WIDTH + 10}px")
        self.widget = w.VBox([controls, self.summary, self.error, views])
        self._send()

    # ---- public actions (also what the controls call) --------------------------------------
    def set_sparsity(self, sparsity: float) -> Masks:
        """Re-prunes the model at ``sparsity`` with the current method; returns the new masks.

        On an error the viewer shows it, keeps its masks and moves the slider back; the error
        is raised too."""
        return self._reprune(self.method, float(sparsity))

    def set_method(self, method: str) -> Masks:
        """Re-prunes with another method at the current sparsity (errors as in
        :meth:`set_sparsity`)."""
        if method not in METHODS:
            raise ConfigError(f"method must be one of {sorted(METHODS)}, got {method!r}")
        return self._reprune(method, self.sparsity)

    def zoom(self, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[int, int, int, int]:
        """Shows rows ``rows[0]:rows[1]`` and columns ``cols[0]:cols[1]`` of the layer's grid
        (clipped to it), in the browser too; returns the window shown. A window of at most
        :data:`CANVAS` cells per axis is drawn as exact bits."""
        window = self._clip((*rows, *cols))
        self.canvas.window = list(window)  # the observer records it and updates the summary
        return self.window

    def window_bits(self) -> np.ndarray:
        """The exact bits of the shown window: kept weights (mask mode) or where the two masks
        disagree (diff mode), as a (rows, cols) bool array."""
        grid = mask_grid(self.masks[self.layer])
        if self._diffing():
            grid = grid != mask_grid(self.other[self.layer])
        r0, r1, c0, c1 = self.window
        return grid[r0:r1, c0:c1]

    def select(self, layer: str) -> None:
        """Shows ``layer``'s mask."""
        if layer not in self.masks:
            raise ConfigError(f"layer {layer!r} is not masked; masked: {list(self.masks)[:8]}")
        if layer == self.layer and self.layers.value == layer:
            return
        self.layer = layer
        if self.layers.value != layer:
            self.layers.value = layer
        self._send(whole=True)

    def set_mode(self, mode: str) -> None:
        """``"mask"`` or ``"diff"`` (needs ``other``)."""
        if mode not in MODES or (mode == "diff" and self.other is None):
            raise ConfigError("mode is 'mask', or 'diff' when the viewer was given other= masks")
        if self.mode.value != mode:
            self.mode.value = mode
        self._send()

    @property
    def bars(self) -> go.FigureWidget:
        """The sparsity bar chart's figure widget (made on first use)."""
        return self.bars_slot.figure

    def _new_bars(self) -> go.FigureWidget:
        bars = PlotWidget(layer_sparsity_figure(self.masks))
        # a fixed width next to the 560 px canvas; the row wraps where the output is narrower
        bars.layout.width = _BARS_WIDTH
        bars.data[0].on_click(self._on_bar_click)
        return bars

    def _materialize(self) -> None:
        self.bars_slot.figure  # noqa: B018 - made when the view is first displayed

    def static_figure(self) -> go.Figure:
        """Sparsity bars and the shown window of the layer (exact bits when it fits the canvas,
        as in the browser)."""
        other = self.other if self._diffing() else None
        r0, r1, c0, c1 = self.window
        rows, cols = mask_grid(self.masks[self.layer]).shape
        whole = self.window == (0, rows, 0, cols)
        exact = r1 - r0 <= CANVAS[0] and c1 - c0 <= CANVAS[1]
        cells = max(96, r1 - r0, c1 - c0) if exact and not whole else 96
        return masks_figure(
            self.masks,
            self.layer,
            other=other,
            max_cells=cells,
            window=None if whole else self.window,
        )

    def __repr__(self) -> str:
        return f"MaskViewer({self.masks!r}, layer={self.layer!r})"

    # ---- internals ---------------------------------------------------------------------------
    def _reprune(self, method: str, sparsity: float) -> Masks:
        if self.model is None:
            raise ConfigError("live re-pruning needs the model: MaskViewer(masks, model=model)")
        try:
            masks = METHODS[method](self.model, sparsity)
        except NasvizError as exc:
            self.error.value = (
                f"<span style='color:#c00'>{method} at {sparsity:.2f} failed: "
                f"{html.escape(str(exc))}; kept {self.method} at {self.sparsity:.2f}</span>"
            )
            self._set_controls(self.method, self.sparsity)
            raise
        self.error.value = ""
        self.method, self.sparsity, self.masks = method, sparsity, masks
        self._set_controls(method, sparsity)
        whole = self.layer not in masks
        if whole:
            self.layer = max(masks, key=lambda n: masks[n].numel())
        with self._quietly():
            self.layers.options = list(masks)
            self.layers.value = self.layer
        self._send(whole=whole)
        return masks

    def _set_controls(self, method: str, sparsity: float) -> None:
        """Moves the picker and slider to ``(method, sparsity)`` without re-pruning."""
        with self._quietly():
            self.picker.value = method
            self.slider.value = sparsity

    @contextlib.contextmanager
    def _quietly(self) -> Iterator[None]:
        quiet, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = quiet

    def _control(self, action: Any, value: Any) -> None:
        """A control moved: act, unless the viewer moved it; errors are already on show."""
        if self._quiet:
            return
        with contextlib.suppress(NasvizError):
            action(value)

    def _diffing(self) -> bool:
        return self.mode.value == "diff" and self.other is not None and self.layer in self.other

    def _clip(self, window: Any) -> tuple[int, int, int, int]:
        """``(r0, r1, c0, c1)`` clipped to the layer's grid, non-empty; ConfigError if malformed."""
        if not isinstance(window, tuple | list) or len(window) != 4:
            raise ConfigError(f"a window is (row0, row1, col0, col1), got {window!r}")
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in window):
            raise ConfigError(f"a window holds ints, got {window!r}")
        rows, cols = mask_grid(self.masks[self.layer]).shape
        r0, r1 = sorted((min(max(int(window[0]), 0), rows), min(max(int(window[1]), 0), rows)))
        c0, c1 = sorted((min(max(int(window[2]), 0), cols), min(max(int(window[3]), 0), cols)))
        if r1 == r0 or c1 == c0:
            raise ConfigError(
                f"window {tuple(window)} shows no cell of {self.layer!r} ({rows} x {cols})"
            )
        return r0, r1, c0, c1

    def _on_window(self, change: dict[str, Any]) -> None:
        """The browser zoomed or panned (or :meth:`zoom` was called): record and report it."""
        try:
            window = self._clip(change["new"])
        except ConfigError:
            window = self.window  # a malformed window from the front end: keep the last one
        self.window = window
        if list(window) != list(self.canvas.window):
            self.canvas.window = list(window)
            return  # the observer runs again with the clipped window
        self._summarize()

    def _on_bar_click(self, trace: Any, points: Any, state: Any) -> None:
        if points.point_inds:
            self.select(trace.x[points.point_inds[0]])

    def _send(self, whole: bool = False) -> None:
        """Sends the layer's bits (and the window: the whole grid when ``whole``)."""
        rows, cols, bits = pack_mask(self.masks[self.layer])
        other = b""
        if self._diffing():
            o_rows, o_cols, other = pack_mask(self.other[self.layer])
            if (o_rows, o_cols) != (rows, cols):
                raise ConfigError(
                    f"cannot diff {self.layer!r}: shapes differ between the two masks"
                )
        fits = self.window[1] <= rows and self.window[3] <= cols and self.window[1] > 0
        self.window = self.window if fits and not whole else (0, rows, 0, cols)
        with self.canvas.hold_sync():
            self.canvas.layer, self.canvas.rows, self.canvas.cols = self.layer, rows, cols
            self.canvas.bits, self.canvas.other_bits = bits, other
            self.canvas.mode = "diff" if other else "mask"
            self.canvas.window = list(self.window)
        if self.bars_slot.created:  # else made with the current masks when first shown
            info = layer_sparsity_info(self.masks)
            with self.bars.batch_update():
                self.bars.data[0].x, self.bars.data[0].y = list(info.names), list(info.sparsity)
                self.bars.layout.title.text = f"sparsity per layer (overall {info.overall:.1%})"
        self._summarize()

    def _summarize(self) -> None:
        rows, cols = self.canvas.rows, self.canvas.cols
        r0, r1, c0, c1 = self.window
        if (r0, r1, c0, c1) == (0, rows, 0, cols):
            shown = "the whole layer"
        else:
            shown = f"rows {r0}–{r1}, cols {c0}–{c1}"
        exact = r1 - r0 <= CANVAS[0] and c1 - c0 <= CANVAS[1]
        self.summary.value = (
            f"<b>{self.masks.meta.get('method', 'masks')}</b>: {self.masks.kept:,} of {self.masks.total:,} "
            f"weights kept (sparsity {self.masks.sparsity:.1%}); layer <code>{self.layer}</code> sent as "
            f"{self.sent_bytes:,} bytes for {rows * cols:,} weights; showing {shown} "
            f"({'exact bits' if exact else 'density tiles'})"
        )

    @property
    def sent_bytes(self) -> int:
        """Bytes of mask data currently sent to the browser."""
        return len(self.canvas.bits) + len(self.canvas.other_bits)
