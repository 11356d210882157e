"""Mixture-of-experts routing as figures: layer x expert load, label x expert load, a sequence's
experts per layer, and compressed variants on the accuracy/params plane.
Compute -> info (tested) -> plotly figure."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "RoutingGridInfo",
    "compression_figure",
    "routing_grid_figure",
    "routing_label_info",
    "routing_load_info",
    "routing_sequence_info",
]


class RoutingGridInfo(NamedTuple):
    """A heatmap: ``z[row][column]`` with row and column labels, titles and hover text.

    ``kind`` is ``"load"``, ``"label"`` or ``"sequence"``; for sequences ``z`` holds expert ids
    (-1: not routed) and ``text`` the token ids.
    """

    kind: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    z: np.ndarray
    text: np.ndarray
    title: str
    x_title: str
    y_title: str


def _expert_columns(n: int) -> tuple[str, ...]:
    return tuple(f"expert {e}" for e in range(n))


def routing_load_info(stats: Any, value: str = "fraction") -> RoutingGridInfo:
    """Layer x expert load from a :class:`~nasviz.moe.RoutingStats` (``value``: fraction or count)."""
    table = stats.load_matrix(value)
    counts = stats.load_matrix("count").to_numpy()
    text = np.where(
        np.isnan(counts), "", np.vectorize(lambda c: f"{c:.0f} tokens")(np.nan_to_num(counts))
    )
    return RoutingGridInfo(
        "load",
        tuple(map(str, table.index)),
        _expert_columns(table.shape[1]),
        table.to_numpy(dtype=float),
        text,
        f"Expert load per layer ({value})",
        "expert",
        "layer",
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
    )


def routing_sequence_info(stats: Any, example: int) -> RoutingGridInfo:
    """Layer x position of one sequence, each cell the token's first-choice expert."""
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
        f"Example {example}: first-choice expert of each token",
        "position",
        "layer",
    )


def routing_grid_figure(info: RoutingGridInfo) -> go.Figure:
    """A heatmap of ``info``: continuous colours for loads, one colour per expert for sequences."""
    if info.kind == "sequence":
        n = (
            int(np.nanmax(info.z)) + 1
            if np.isfinite(info.z).any() and np.nanmax(info.z) >= 0
            else 1
        )
        colors = [
            "#636efa",
            "#EF553B",
            "#00cc96",
            "#ab63fa",
            "#FFA15A",
            "#19d3f3",
            "#FF6692",
            "#B6E880",
        ]
        scale = []
        for e in range(n):
            c = colors[e % len(colors)]
            scale += [(e / n, c), ((e + 1) / n, c)]
        heat = go.Heatmap(
            z=info.z,
            x=list(info.columns),
            y=list(info.rows),
            text=info.z.astype(int).astype(str),
            customdata=info.text,
            texttemplate="%{text}",
            zmin=-0.5,
            zmax=n - 0.5,
            colorscale=scale,
            colorbar={"title": "expert", "tickvals": list(range(n))},
            hovertemplate="%{y}, position %{x}, %{customdata}: expert %{z}<extra></extra>",
        )
    else:
        heat = go.Heatmap(
            z=info.z,
            x=list(info.columns),
            y=list(info.rows),
            text=info.text,
            colorscale="Viridis",
            zmin=0,
            hovertemplate="%{y}, %{x}: %{z:.3f} (%{text})<extra></extra>",
        )
    fig = go.Figure(heat)
    fig.update_layout(
        title=info.title,
        xaxis_title=info.x_title,
        yaxis_title=info.y_title,
        yaxis={"autorange": "reversed"},
        height=max(260, 60 + 40 * len(info.rows)),
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    return fig


def compression_figure(report: pd.DataFrame, results: pd.DataFrame | None = None) -> go.Figure:
    """Compressed variants (a :func:`~nasviz.moe.compression_report`) on the accuracy vs params
    plane, optionally over search results with the same ``accuracy`` and ``params`` columns."""
    fig = go.Figure()
    if results is not None and {"accuracy", "params"} <= set(results.columns):
        fig.add_scatter(
            x=results["params"],
            y=results["accuracy"],
            mode="markers",
            name="search",
            marker={"color": "lightgray"},
        )
    fig.add_scatter(
        x=report["params"],
        y=report["accuracy"],
        mode="markers+text",
        text=report["name"],
        textposition="top center",
        name="MoE variants",
        marker={"size": 11},
    )
    fig.update_layout(
        title="Compressed experts: accuracy vs parameters",
        xaxis_title="params",
        yaxis_title="accuracy (%)",
        height=360,
    )
    return fig
