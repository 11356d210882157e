"""Mixture-of-experts routing as figures: layer x expert load (also with experts dropped),
label x expert load and a sequence's experts per layer. Compute -> info (tested) -> figure.

Load colours are anchored: 0 at one end, the uniform share (every expert equally used) in the
middle, twice that at the other end (or the largest share, if larger). A balanced layer reads as
one even colour, not as a "very unbalanced" 0.22–0.28 stretched over the whole scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go

from nasviz.viz._static import Figure

__all__ = [
    "NOT_ROUTED",
    "RoutingGridInfo",
    "expert_colors",
    "load_scale",
    "routing_drop_info",
    "routing_grid_figure",
    "routing_label_info",
    "routing_load_info",
    "routing_sequence_info",
]

NOT_ROUTED = "#d9d9d9"  # sequence cells whose token no expert processed
MAX_CELL_TEXT = 600  # write expert ids into sequence cells only up to this many cells


class RoutingGridInfo(NamedTuple):
    """A heatmap: ``z[row][column]`` with row and column labels, titles and hover text.

    ``kind`` is ``"load"``, ``"label"`` or ``"sequence"``; for sequences ``z`` holds expert ids
    (-1: not routed) and ``text`` the token ids. ``num_experts`` is the widest layer's count;
    ``value`` what ``z`` holds (``"fraction"``: shares that sum to 1 per row, ``"count"``, or
    ``"expert"`` ids).
    """

    kind: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    z: np.ndarray
    text: np.ndarray
    title: str
    x_title: str
    y_title: str
    num_experts: int
    value: str = "fraction"


def _expert_columns(n: int) -> tuple[str, ...]:
    return tuple(f"expert {e}" for e in range(n))


def _count_text(counts: np.ndarray) -> np.ndarray:
    return np.where(
        np.isnan(counts), "", np.vectorize(lambda c: f"{c:.0f} tokens")(np.nan_to_num(counts))
    )


def routing_load_info(stats: Any, value: str = "fraction") -> RoutingGridInfo:
    """Layer x expert load from a :class:`~nasviz.moe.RoutingStats` (``value``: a
    :meth:`~nasviz.moe.RoutingStats.load` column such as ``"fraction"`` or ``"count"``)."""
    table = stats.load_matrix(value)
    return RoutingGridInfo(
        "load",
        tuple(map(str, table.index)),
        _expert_columns(table.shape[1]),
        table.to_numpy(dtype=float),
        _count_text(stats.load_matrix("count").to_numpy()),
        f"Expert load per layer ({value})",
        "expert",
        "layer",
        table.shape[1],
        value,
    )


def routing_drop_info(stats: Any, layer: int | str, drop: Sequence[int]) -> RoutingGridInfo:
    """Layer x expert load fractions with ``drop`` removed from ``layer``: that row holds the
    what-if load (:meth:`~nasviz.moe.RoutingStats.load_without`), dropped cells are empty."""
    after = stats.load_without(layer, list(drop))
    name = stats.recording.layer(layer).name
    z = np.array(stats.load_matrix("fraction").to_numpy(dtype=float))  # a writable copy
    text = np.array(_count_text(stats.load_matrix("count").to_numpy()), dtype=object)
    row = stats.layers.index(name)
    gone = sorted({int(e) for e in drop})
    z[row, : len(after)] = after["fraction_after"].to_numpy()
    z[row, gone] = np.nan
    text[row, : len(after)] = [
        f"{a:.0%} after drop ({b:.0%} before)"
        for a, b in zip(after["fraction_after"], after["fraction_before"], strict=True)
    ]
    text[row, gone] = "dropped"
    return RoutingGridInfo(
        "load",
        tuple(stats.layers),
        _expert_columns(z.shape[1]),
        z,
        text,
        f"Load with experts {gone} of {name} dropped "
        f"({after['rerouted'].iloc[0]:.0%} of its tokens change first choice)",
        "expert",
        "layer",
        z.shape[1],
    )


def routing_label_info(stats: Any, label: str, layer: int | str | None = None) -> RoutingGridInfo:
    """Label value x expert share of assignments (each row sums to 1)."""
    table = stats.by_label(label, layer=layer)
    where = "all layers" if layer is None else stats.recording.layer(layer).name
    z = table.to_numpy(dtype=float)
    return RoutingGridInfo(
        "label",
        tuple(f"{label}={v}" for v in table.index),
        _expert_columns(table.shape[1]),
        z,
        np.vectorize(lambda v: f"{v:.0%}")(z),
        f"Where each {label}'s tokens go ({where})",
        "expert",
        label,
        table.shape[1],
    )


def routing_sequence_info(stats: Any, example: int) -> RoutingGridInfo:
    """Layer x position of one sequence, each cell the expert that processed the token
    (its best-ranked kept choice; -1: not routed)."""
    table = stats.sequence(example)
    layers = [c for c in table.columns if c != "token"]
    z = table[layers].to_numpy().T.astype(float)  # (layers, positions)
    tokens = table["token"].to_numpy()
    text = np.broadcast_to(np.array([f"token {t}" if t >= 0 else "" for t in tokens]), z.shape)
    return RoutingGridInfo(
        "sequence",
        tuple(layers),
        tuple(f"{p}" for p in table.index),
        z,
        np.array(text),
        f"Example {example}: expert of each token",
        "position",
        "layer",
        max(r.num_experts for r in stats.recording.layers),
        "expert",
    )


def expert_colors(n: int) -> list[str]:
    """One distinct colour per expert: plotly's 24-colour Dark24 palette up to 24 experts,
    evenly spaced colours of the Turbo scale beyond (none is the not-routed grey)."""
    if n <= len(pc.qualitative.Dark24):
        return list(pc.qualitative.Dark24[:n])
    return pc.sample_colorscale("Turbo", list(np.linspace(0.0, 1.0, n)))


def _sequence_heatmap(info: RoutingGridInfo) -> go.Heatmap:
    """Categorical bands: -1 (not routed) in grey, then one colour per expert."""
    n = max(info.num_experts, 1)
    colors = [NOT_ROUTED, *expert_colors(n)]
    bands = len(colors)  # values -1 .. n-1
    scale = []
    for b, c in enumerate(colors):
        scale += [(b / bands, c), ((b + 1) / bands, c)]
    step = max(1, n // 16)
    ticks = [-1, *range(0, n, step)]
    labels = np.where(info.z >= 0, np.nan_to_num(info.z, nan=-1).astype(int).astype(str), "")
    return go.Heatmap(
        z=info.z,
        x=list(info.columns),
        y=list(info.rows),
        text=labels,
        customdata=info.text,
        texttemplate="%{text}" if info.z.size <= MAX_CELL_TEXT else None,
        zmin=-1.5,
        zmax=n - 0.5,
        zauto=False,
        colorscale=scale,
        colorbar={
            "title": "expert",
            "tickvals": ticks,
            "ticktext": ["not routed", *map(str, ticks[1:])],
        },
        hovertemplate="%{y}, position %{x}, %{customdata}: expert %{z}<extra></extra>",
    )


def load_scale(info: RoutingGridInfo) -> tuple[float, float, float]:
    """``(zmin, uniform, zmax)`` of a share heatmap: from 0, the uniform share ``1 / experts``
    in the middle, up to twice that (or the largest share, if larger)."""
    uniform = 1.0 / max(info.num_experts, 1)
    finite = info.z[np.isfinite(info.z)] if info.z.size else np.zeros(0)
    top = max(2 * uniform, float(finite.max()) if finite.size else 0.0)
    return 0.0, uniform, min(top, 1.0) if top <= 1.0 else top


def _json_z(z: np.ndarray) -> list[list[float | None]]:
    """Heatmap values with gaps as None (NaN is not valid JSON: the widget could not send it)."""
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(z)]


def _value_heatmap(
    info: RoutingGridInfo, zmin: float, zmax: float, colorbar: dict, hover: str
) -> go.Heatmap:
    """A continuous heatmap with its whole scale set (nothing left from a previous view)."""
    return go.Heatmap(
        z=_json_z(info.z),
        x=list(info.columns),
        y=list(info.rows),
        text=info.text,
        customdata=None,
        texttemplate=None,
        colorscale="Viridis",
        zmin=zmin,
        zmax=zmax,
        zauto=False,
        colorbar=colorbar,
        hovertemplate=f"%{{y}}, %{{x}}: {hover} (%{{text}})<extra></extra>",
    )


def _share_heatmap(info: RoutingGridInfo) -> go.Heatmap:
    """Shares (each row sums to 1) on the anchored scale of :func:`load_scale`."""
    zmin, uniform, zmax = load_scale(info)
    colorbar = {
        "title": {"text": "share"},
        "tickvals": [zmin, uniform, zmax],
        "ticktext": ["0", f"uniform {uniform:.0%}", f"{zmax:.0%}"],
    }
    return _value_heatmap(info, zmin, zmax, colorbar, "%{z:.1%}")


def _count_heatmap(info: RoutingGridInfo) -> go.Heatmap:
    finite = info.z[np.isfinite(info.z)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    colorbar = {"title": {"text": info.value}, "tickformat": "~s"}
    return _value_heatmap(info, 0.0, top, colorbar, "%{z:,.0f}")


def routing_grid_figure(info: RoutingGridInfo) -> Figure:
    """A heatmap of ``info``: anchored colours for loads (see the module docstring), one colour
    per expert for sequences. Every view sets its whole colour scale, so switching views in a
    live heatmap never keeps the previous view's range."""
    if info.kind == "sequence":
        heat = _sequence_heatmap(info)
    elif info.value == "fraction":
        heat = _share_heatmap(info)
    else:
        heat = _count_heatmap(info)
    fig = Figure(heat)
    title = info.title
    if info.kind != "sequence" and info.value == "fraction":
        title += (
            f"<br><sup>colour from 0; mid-scale: the uniform share, {load_scale(info)[1]:.0%}</sup>"
        )
    fig.update_layout(
        template="nasviz",
        title=title,
        xaxis_title=info.x_title,
        yaxis={"autorange": "reversed", "title": {"text": info.y_title}},
        height=max(280, 90 + 40 * len(info.rows)),
        margin={"t": 70},
    )
    return fig
