"""MaskViewer: per-layer pruning masks on a canvas, sparsity bars, live re-pruning and diffs.

The selected layer's mask travels to the browser bit-packed (``numpy.packbits``: 1 bit per
weight) as an anywidget binary traitlet; ``widgets/mask.js`` draws density tiles for big layers
and exact bits when zoomed in.

Threads: a MaskViewer is driven from the kernel's main thread (widget callbacks); it reads its
Masks and, for live re-pruning, calls the pruning methods on its model (never changing it).
"""

from __future__ import annotations

from typing import Any

import anywidget
import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import traitlets
from torch import nn

from nasviz.errors import ConfigError
from nasviz.prune import METHODS, Masks
from nasviz.ui._base import View, static_asset
from nasviz.viz._masks import layer_sparsity_figure, layer_sparsity_info, mask_grid, masks_figure

__all__ = ["MaskCanvas", "MaskViewer", "pack_mask", "unpack_mask"]

_BARS_WIDTH = 380  # px of the sparsity bar chart


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
    """

    def __init__(
        self,
        source: Masks | nn.Module,
        model: nn.Module | None = None,
        method: str = "magnitude",
        sparsity: float | None = None,
        other: Masks | None = None,
        layer: str | None = None,
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
        self.model, self.method, self.other = model, method, other
        start = (
            sparsity
            if sparsity is not None
            else float((masks.meta if masks else {}).get("sparsity", 0.5))
        )
        self.masks: Masks = masks if masks is not None else METHODS[method](model, start)
        self.layer = (
            layer if layer is not None else max(self.masks, key=lambda n: self.masks[n].numel())
        )
        if self.layer not in self.masks:
            raise ConfigError(f"layer {self.layer!r} is not masked; masked: {list(self.masks)[:8]}")
        self.canvas = MaskCanvas()
        self.bars = go.FigureWidget(layer_sparsity_figure(layer_sparsity_info(self.masks)))
        # a fixed width next to the 560 px canvas; the row wraps where the output is narrower
        self.bars.layout.width = _BARS_WIDTH
        live = model is not None
        self.slider = w.FloatSlider(
            value=start,
            min=0.0,
            max=0.99,
            step=0.01,
            description="sparsity",
            continuous_update=False,
            disabled=not live,
        )
        self.picker = w.Dropdown(
            options=sorted(METHODS), value=method, description="method", disabled=not live
        )
        self.layers = w.Dropdown(options=list(self.masks), value=self.layer, description="layer")
        self.mode = w.ToggleButtons(options=["mask", "diff"], value="mask", disabled=other is None)
        self.summary = w.HTML()
        self.slider.observe(lambda ch: self.set_sparsity(ch["new"]), names="value")
        self.picker.observe(lambda ch: self.set_method(ch["new"]), names="value")
        self.layers.observe(lambda ch: self.select(ch["new"]), names="value")
        self.mode.observe(lambda ch: self.set_mode(ch["new"]), names="value")
        self.bars.data[0].on_click(self._on_bar_click)
        controls = w.HBox([self.picker, self.slider, self.layers, self.mode])
        views = w.HBox(
            [self.canvas, self.bars],
            layout=w.Layout(flex_flow="row wrap", align_items="flex-start"),
        )
        self.widget = w.VBox([controls, self.summary, views])
        self._send()

    # ---- public actions (also what the controls call) --------------------------------------
    def set_sparsity(self, sparsity: float) -> Masks:
        """Re-prunes the model at ``sparsity`` with the current method; returns the new masks."""
        return self._reprune(self.method, float(sparsity))

    def set_method(self, method: str) -> Masks:
        """Re-prunes with another method at the current sparsity."""
        if method not in METHODS:
            raise ConfigError(f"method must be one of {sorted(METHODS)}, got {method!r}")
        return self._reprune(method, float(self.slider.value))

    def select(self, layer: str) -> None:
        """Shows ``layer``'s mask."""
        if layer not in self.masks:
            raise ConfigError(f"layer {layer!r} is not masked; masked: {list(self.masks)[:8]}")
        self.layer = layer
        if self.layers.value != layer:
            self.layers.value = layer
        self._send()

    def set_mode(self, mode: str) -> None:
        """``"mask"`` or ``"diff"`` (needs ``other``)."""
        if mode not in ("mask", "diff") or (mode == "diff" and self.other is None):
            raise ConfigError("mode is 'mask', or 'diff' when the viewer was given other= masks")
        if self.mode.value != mode:
            self.mode.value = mode
        self._send()

    def static_figure(self) -> go.Figure:
        other = self.other if self.mode.value == "diff" else None
        return masks_figure(self.masks, self.layer, other)

    def __repr__(self) -> str:
        return f"MaskViewer({self.masks!r}, layer={self.layer!r})"

    # ---- internals ---------------------------------------------------------------------------
    def _reprune(self, method: str, sparsity: float) -> Masks:
        if self.model is None:
            raise ConfigError("live re-pruning needs the model: MaskViewer(masks, model=model)")
        masks = METHODS[method](self.model, sparsity)
        self.method, self.masks = method, masks
        if self.layer not in masks:
            self.layer = max(masks, key=lambda n: masks[n].numel())
        self.layers.options = list(masks)
        self.layers.value = self.layer
        self._send()
        return masks

    def _on_bar_click(self, trace: Any, points: Any, state: Any) -> None:
        if points.point_inds:
            self.select(trace.x[points.point_inds[0]])

    def _send(self) -> None:
        rows, cols, bits = pack_mask(self.masks[self.layer])
        other = b""
        diff = self.mode.value == "diff" and self.other is not None and self.layer in self.other
        if diff:
            o_rows, o_cols, other = pack_mask(self.other[self.layer])
            if (o_rows, o_cols) != (rows, cols):
                raise ConfigError(
                    f"cannot diff {self.layer!r}: shapes differ between the two masks"
                )
        with self.canvas.hold_sync():
            self.canvas.layer, self.canvas.rows, self.canvas.cols = self.layer, rows, cols
            self.canvas.bits, self.canvas.other_bits = bits, other
            self.canvas.mode = "diff" if diff else "mask"
        info = layer_sparsity_info(self.masks)
        with self.bars.batch_update():
            self.bars.data[0].x, self.bars.data[0].y = list(info.names), list(info.sparsity)
            self.bars.layout.title.text = f"sparsity per layer (overall {info.overall:.1%})"
        self.summary.value = (
            f"<b>{self.masks.meta.get('method', 'masks')}</b>: {self.masks.kept:,} of {self.masks.total:,} "
            f"weights kept (sparsity {self.masks.sparsity:.1%}); layer <code>{self.layer}</code> sent as "
            f"{len(bits) + len(other):,} bytes for {rows * cols:,} weights"
        )

    @property
    def sent_bytes(self) -> int:
        """Bytes of mask data currently sent to the browser."""
        return len(self.canvas.bits) + len(self.canvas.other_bits)
