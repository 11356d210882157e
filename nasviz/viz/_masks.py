"""Pruning masks as figures: per-layer sparsity bars and mask heatmaps (density tiles or exact
bits), also as a diff of two masks. Compute -> info (tested) -> plotly figure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nasviz.viz._compat import keyword_only_after, old_info_call
from nasviz.viz._static import Figure

__all__ = [
    "LayerSparsityInfo",
    "MaskHeatmapInfo",
    "layer_sparsity_figure",
    "layer_sparsity_info",
    "layer_sparsity_plot",
    "mask_grid",
    "mask_heatmap_figure",
    "mask_heatmap_info",
    "mask_heatmap_plot",
    "masks_figure",
]


def mask_grid(mask: Any) -> np.ndarray:
    """A mask as a 2-D bool array: rows = output channels, columns = everything else
    (in-features, or in-channels x kernel); a 1-D mask is one row."""
    arr = np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask, dtype=bool)
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:
        return arr.reshape(1, -1)
    return arr.reshape(arr.shape[0], -1)


class LayerSparsityInfo(NamedTuple):
    names: tuple[str, ...]
    sparsity: tuple[float, ...]
    params: tuple[int, ...]
    overall: float


def layer_sparsity_info(masks: Mapping[str, Any]) -> LayerSparsityInfo:
    """Per-tensor sparsity (fraction pruned) and size, and the overall sparsity."""
    names, sparsity, params = [], [], []
    for name, mask in masks.items():
        grid = mask_grid(mask)
        names.append(name)
        params.append(int(grid.size))
        sparsity.append(1.0 - np.count_nonzero(grid) / grid.size if grid.size else 0.0)
    total = sum(params)
    overall = sum(s * p for s, p in zip(sparsity, params, strict=True)) / total if total else 0.0
    return LayerSparsityInfo(tuple(names), tuple(sparsity), tuple(params), overall)


def layer_sparsity_plot(
    info: LayerSparsityInfo,
    other: LayerSparsityInfo | None = None,
    *,
    labels: tuple[str, str] = ("a", "b"),
) -> Figure:
    """Draws a :class:`LayerSparsityInfo` (two bar series with ``other``)."""
    fig = Figure()
    hover = [f"{n}<br>{p:,} weights" for n, p in zip(info.names, info.params, strict=True)]
    fig.add_bar(
        x=list(info.names),
        y=list(info.sparsity),
        name=labels[0] if other else "sparsity",
        hovertext=hover,
    )
    if other is not None:
        fig.add_bar(x=list(other.names), y=list(other.sparsity), name=labels[1])
    fig.update_layout(
        template="nasviz",
        title=f"sparsity per layer (overall {info.overall:.1%})",
        yaxis={"range": [0, 1], "title": {"text": "share pruned"}, "tickformat": ".0%"},
        barmode="group",
        height=320,
        margin={"l": 50, "r": 10, "t": 40, "b": 80},
    )
    return fig


def layer_sparsity_figure(
    masks: Mapping[str, Any] | LayerSparsityInfo,
    other: Mapping[str, Any] | LayerSparsityInfo | None = None,
    *,
    labels: tuple[str, str] = ("a", "b"),
) -> Figure:
    """Bar chart of the sparsity per layer of ``masks`` (name -> bool tensor, e.g. a
    :class:`~nasviz.prune.Masks`), beside ``other``'s when given.
    ``layer_sparsity_figure(info)`` (previous release) still works, with a FutureWarning."""
    if old_info_call(
        "layer_sparsity_figure", masks, LayerSparsityInfo, "layer_sparsity_figure(masks)"
    ):
        return layer_sparsity_plot(masks, other, labels=labels)  # type: ignore[arg-type]
    return layer_sparsity_plot(
        layer_sparsity_info(masks),
        None if other is None else layer_sparsity_info(other),  # type: ignore[arg-type]
        labels=labels,
    )


class MaskHeatmapInfo(NamedTuple):
    """A mask drawn as ``values`` (2-D): exact bits when ``tile == (1, 1)``, else the kept
    fraction (or, in diff mode, the disagreeing fraction) of each ``tile`` of weights.
    ``window`` is the ``(row0, row1, col0, col1)`` shown (None: the whole mask)."""

    name: str
    shape: tuple[int, ...]
    rows: int
    cols: int
    tile: tuple[int, int]
    values: np.ndarray
    mode: str
    window: tuple[int, int, int, int] | None = None


def _tiles(grid: np.ndarray, tr: int, tc: int) -> np.ndarray:
    """Fraction of True cells in every ``tr`` x ``tc`` tile of a bool grid (edge tiles may be
    smaller), counted in one pass without copying the grid."""
    rows, cols = grid.shape
    r_starts, c_starts = np.arange(0, rows, tr), np.arange(0, cols, tc)
    counts = np.add.reduceat(grid, c_starts, axis=1, dtype=np.int32)  # (rows, C), along rows
    counts = np.add.reduceat(counts, r_starts, axis=0)  # (R, C)
    cells = np.outer(np.diff(r_starts, append=rows), np.diff(c_starts, append=cols))  # (R, C)
    return counts / cells


def mask_heatmap_info(
    mask: Any,
    name: str = "",
    other: Any = None,
    max_cells: int = 128,
    window: tuple[int, int, int, int] | None = None,
) -> MaskHeatmapInfo:
    """Heatmap data for one mask (or the diff of two masks of the same shape).

    Args:
        max_cells: at most this many tiles per axis; bigger masks are averaged into tiles.
        window: ``(row0, row1, col0, col1)`` to zoom into; small enough windows show exact bits.
    """
    grid = mask_grid(mask)
    shape = tuple(getattr(mask, "shape", grid.shape))
    mode = "mask"
    if other is not None:
        b = mask_grid(other)
        if b.shape != grid.shape:
            raise ValueError(f"cannot diff masks of shapes {grid.shape} and {b.shape}")
        grid, mode = grid != b, "diff"
    if window is not None:
        r0, r1, c0, c1 = window
        grid = grid[r0:r1, c0:c1]
    rows, cols = grid.shape
    tr, tc = max(1, math.ceil(rows / max_cells)), max(1, math.ceil(cols / max_cells))
    values = grid.astype(float) if (tr, tc) == (1, 1) else _tiles(grid, tr, tc)
    return MaskHeatmapInfo(name, shape, rows, cols, (tr, tc), values, mode, window)


def mask_heatmap_plot(info: MaskHeatmapInfo) -> Figure:
    """Draws a :class:`MaskHeatmapInfo`: kept = dark, pruned = light (diff: disagreement red)."""
    fig = Figure()
    _add_heatmap(fig, info)
    fig.update_layout(template="nasviz", title=_heatmap_title(info), height=360)
    fig.update_yaxes(autorange="reversed")
    return fig


def mask_heatmap_figure(
    mask: Any,
    name: str = "",
    *,
    other: Any = None,
    max_cells: int = 128,
    window: tuple[int, int, int, int] | None = None,
) -> Figure:
    """A heatmap of one mask (or of where it and ``other`` disagree); see
    :func:`mask_heatmap_info`. ``mask_heatmap_figure(info)`` (previous release) still works."""
    if old_info_call("mask_heatmap_figure", mask, MaskHeatmapInfo, "mask_heatmap_figure(mask)"):
        return mask_heatmap_plot(mask)
    return mask_heatmap_plot(
        mask_heatmap_info(mask, name, other=other, max_cells=max_cells, window=window)
    )


def _heatmap_title(info: MaskHeatmapInfo) -> str:
    what = (
        "exact bits" if info.tile == (1, 1) else f"density of {info.tile[0]}x{info.tile[1]} tiles"
    )
    verb = "where the masks disagree" if info.mode == "diff" else "kept weights"
    where = ""
    if info.window is not None:
        r0, r1, c0, c1 = info.window
        where = f", rows {r0}-{r1}, cols {c0}-{c1}"
    return f"{info.name} {info.shape}{where}: {verb} ({what})"


def _add_heatmap(fig: go.Figure, info: MaskHeatmapInfo, **where: Any) -> None:
    scale = "Reds" if info.mode == "diff" else "Blues"
    fig.add_trace(
        go.Heatmap(
            z=info.values,
            zmin=0,
            zmax=1,
            colorscale=scale,
            showscale=False,
            hovertemplate="row tile %{y}, col tile %{x}: %{z:.2f}<extra></extra>",
        ),
        **where,
    )


@keyword_only_after("other", "max_cells", "window")
def masks_figure(
    masks: Mapping[str, Any],
    layer: str | None = None,
    *,
    other: Mapping[str, Any] | None = None,
    max_cells: int = 96,
    window: tuple[int, int, int, int] | None = None,
) -> Figure:
    """Static summary (for saved notebooks): sparsity bars plus one layer's heatmap (or diff),
    of the whole layer or of ``window`` (see :func:`mask_heatmap_info`)."""
    info = layer_sparsity_info(masks)
    layer = layer if layer is not None else max(masks, key=lambda n: mask_grid(masks[n]).size)
    heat = mask_heatmap_info(
        masks[layer],
        layer,
        other=None if other is None else other.get(layer),
        max_cells=max_cells,
        window=window,
    )
    fig = Figure(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.45, 0.55],
            subplot_titles=(
                f"sparsity per layer (overall {info.overall:.1%})",
                _heatmap_title(heat),
            ),
        )
    )
    fig.add_bar(
        x=list(info.names), y=list(info.sparsity), name="a" if other else "sparsity", row=1, col=1
    )
    if other is not None:
        o = layer_sparsity_info(other)
        fig.add_bar(x=list(o.names), y=list(o.sparsity), name="b", row=1, col=1)
    _add_heatmap(fig, heat, row=1, col=2)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text="share pruned", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_layout(
        template="nasviz", height=380, barmode="group", margin={"l": 50, "r": 10, "t": 50, "b": 80}
    )
    return fig
