"""Importance of Hugging Face heads, FFN neurons and layers as figures: a layer x head heatmap,
block influence per layer, and each layer's neuron scores from highest to lowest, with what a
:class:`~nasviz.prune.StructurePlan` would remove marked. Compute -> info (tested) -> figure."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nasviz.viz._static import Figure

__all__ = [
    "HeadImportanceInfo",
    "LayerImportanceInfo",
    "NeuronImportanceInfo",
    "head_importance_figure",
    "head_importance_info",
    "importance_figure",
    "layer_importance_figure",
    "layer_importance_info",
    "neuron_importance_figure",
    "neuron_importance_info",
]

PRUNED = "#d62728"


class HeadImportanceInfo(NamedTuple):
    """Layer x query head scores. ``kv_heads[c]`` is column c's key/value head; ``removed`` is
    True where the plan removes the head (all False without a plan); ``text`` is hover text."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    z: np.ndarray
    kv_heads: tuple[int, ...]
    removed: np.ndarray
    text: np.ndarray
    title: str


class LayerImportanceInfo(NamedTuple):
    """Block influence (1 - cos(x_in, x_out)) per layer and which layers the plan drops."""

    layers: tuple[str, ...]
    influence: np.ndarray
    dropped: np.ndarray
    title: str


class NeuronImportanceInfo(NamedTuple):
    """Each layer's FFN neuron scores sorted from highest to lowest (``curves[layer]``), and
    how many the plan keeps there (None: no plan, or the layer is left alone)."""

    layers: tuple[str, ...]
    curves: tuple[np.ndarray, ...]
    kept: tuple[int | None, ...]
    title: str


def _plan_title(plan: Any) -> str:
    return "" if plan is None else " — the plan's removals marked"


def head_importance_info(importance: Any, plan: Any = None) -> HeadImportanceInfo:
    """The heads of an :class:`~nasviz.prune.Importance` as a layer x head grid (layers
    dropped by ``plan`` count as removed)."""
    table = importance.head_matrix()  # (layers, heads); NaN where a layer has fewer heads
    z = table.to_numpy(dtype=float)
    kv = importance.heads.groupby("head")["kv_head"].first()
    removed = np.zeros(z.shape, dtype=bool)
    if plan is not None:
        for r, layer in enumerate(table.index):
            if layer in plan.drop:
                removed[r] = True
            elif layer in plan.heads:
                removed[r] = ~np.isin(np.arange(z.shape[1]), list(plan.heads[layer]))
    text = np.array(
        [
            [
                f"layer {layer}, head {h} (kv head {kv[h]}): {v:.4g}"
                + (" — removed" if gone else "")
                for h, v, gone in zip(table.columns, row, flags, strict=True)
            ]
            for layer, row, flags in zip(table.index, z, removed, strict=True)
        ],
        dtype=object,
    )
    return HeadImportanceInfo(
        tuple(f"layer {i}" for i in table.index),
        tuple(f"head {h}" for h in table.columns),
        z,
        tuple(int(kv[h]) for h in table.columns),
        removed,
        text,
        f"Head importance ({importance.method}, {importance.tokens} tokens){_plan_title(plan)}",
    )


def layer_importance_info(importance: Any, plan: Any = None) -> LayerImportanceInfo:
    """Block influence per layer of an :class:`~nasviz.prune.Importance`."""
    layers = importance.layers
    dropped = np.isin(layers["layer"].to_numpy(), list(plan.drop) if plan is not None else [])
    return LayerImportanceInfo(
        tuple(f"layer {i}" for i in layers["layer"]),
        layers["block_influence"].to_numpy(dtype=float),
        dropped,
        f"Block influence 1 - cos(x_in, x_out){_plan_title(plan)}",
    )


def neuron_importance_info(importance: Any, plan: Any = None) -> NeuronImportanceInfo:
    """Sorted FFN neuron scores per layer of an :class:`~nasviz.prune.Importance`."""
    names, curves, kept = [], [], []
    for layer, rows in importance.neurons.groupby("layer", sort=True):
        names.append(f"layer {layer}")
        curves.append(np.sort(rows["score"].to_numpy(dtype=float))[::-1])
        keep = None
        if plan is not None:
            keep = (
                0
                if layer in plan.drop
                else (len(plan.neurons[layer]) if layer in plan.neurons else None)
            )
        kept.append(keep)
    return NeuronImportanceInfo(
        tuple(names),
        tuple(curves),
        tuple(kept),
        f"FFN neuron importance, sorted{_plan_title(plan)}",
    )


def _head_trace(info: HeadImportanceInfo) -> go.Heatmap:
    return go.Heatmap(
        z=info.z,
        x=list(info.columns),
        y=list(info.rows),
        text=np.where(info.removed, "✕", ""),
        texttemplate="%{text}",
        customdata=info.text,
        colorscale="Viridis",
        colorbar={"title": "score", "len": 0.5, "y": 0.78},
        hovertemplate="%{customdata}<extra></extra>",
    )


def _layer_trace(info: LayerImportanceInfo) -> go.Bar:
    return go.Bar(
        x=list(info.layers),
        y=info.influence,
        marker_color=[PRUNED if d else "#1f77b4" for d in info.dropped],
        hovertemplate="%{x}: %{y:.4g}<extra></extra>",
        name="block influence",
        showlegend=False,
    )


def head_importance_figure(info: HeadImportanceInfo) -> Figure:
    """Heatmap of head scores, layers top to bottom; removed heads marked ✕."""
    fig = Figure(_head_trace(info))
    fig.update_layout(
        template="nasviz",
        title=info.title,
        yaxis={"autorange": "reversed"},
        xaxis_title="query head",
        height=max(260, 60 + 28 * len(info.rows)),
        margin={"l": 70, "r": 20, "t": 50, "b": 40},
    )
    return fig


def layer_importance_figure(info: LayerImportanceInfo) -> Figure:
    """Bar per layer of block influence; dropped layers in red."""
    fig = Figure(_layer_trace(info))
    fig.update_layout(
        template="nasviz",
        title=info.title,
        yaxis_title="1 - cos",
        height=300,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    return fig


def neuron_importance_figure(info: NeuronImportanceInfo) -> Figure:
    """One line per layer: neuron scores from highest to lowest, a marker where the plan's cut
    falls."""
    fig = Figure()
    for name, curve, keep in zip(info.layers, info.curves, info.kept, strict=True):
        fig.add_scatter(y=curve, mode="lines", name=name)
        if keep is not None and 0 < keep <= len(curve):
            fig.add_scatter(
                x=[keep - 1],
                y=[curve[keep - 1]],
                mode="markers",
                marker={"color": PRUNED, "symbol": "line-ns-open", "size": 14},
                name=f"{name}: keeps {keep}",
                showlegend=False,
                hovertemplate=f"{name}: the last of {keep} kept neurons<extra></extra>",
            )
    fig.update_layout(
        template="nasviz",
        title=info.title,
        xaxis_title="neuron rank",
        yaxis_title="score",
        height=320,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    return fig


def importance_figure(importance: Any, plan: Any = None) -> Figure:
    """Heads heatmap above block influence per layer, one figure (what a notebook shows)."""
    heads, layers = head_importance_info(importance, plan), layer_importance_info(importance, plan)
    fig = Figure(
        make_subplots(
            rows=2,
            cols=1,
            row_heights=[0.65, 0.35],
            vertical_spacing=0.12,
            subplot_titles=(heads.title, layers.title),
        )
    )
    fig.add_trace(_head_trace(heads), row=1, col=1)
    fig.add_trace(_layer_trace(layers), row=2, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_layout(
        template="nasviz",
        height=max(420, 200 + 28 * len(heads.rows)),
        margin={"l": 70, "r": 20, "t": 60, "b": 40},
    )
    return fig
