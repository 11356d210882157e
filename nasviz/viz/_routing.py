"""Mixture-of-experts routing as figures: layer x expert load (also with experts dropped),
label x expert load, a sequence's experts per layer, and compressed variants on a search's
Pareto axes. Compute -> info (tested) -> plotly figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.colors as pc
import plotly.graph_objects as go

from nasviz.errors import ConfigError
from nasviz.objectives import Objective
from nasviz.viz._pareto import ParetoInfo, _axis_title, objective_specs, pareto_figure, pareto_info

__all__ = [
    "NOT_ROUTED",
    "CompressionInfo",
    "RoutingGridInfo",
    "compression_figure",
    "compression_info",
    "expert_colors",
    "routing_drop_info",
    "routing_grid_figure",
    "routing_label_info",
    "routing_load_info",
    "routing_sequence_info",
]

NOT_ROUTED = "#d9d9d9"  # sequence cells whose token no expert processed
VARIANT = "#2ca02c"
MAX_CELL_TEXT = 600  # write expert ids into sequence cells only up to this many cells


class RoutingGridInfo(NamedTuple):
    """A heatmap: ``z[row][column]`` with row and column labels, titles and hover text.

    ``kind`` is ``"load"``, ``"label"`` or ``"sequence"``; for sequences ``z`` holds expert ids
    (-1: not routed) and ``text`` the token ids. ``num_experts`` is the widest layer's count.
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
        colorscale=scale,
        colorbar={
            "title": "expert",
            "tickvals": ticks,
            "ticktext": ["not routed", *map(str, ticks[1:])],
        },
        hovertemplate="%{y}, position %{x}, %{customdata}: expert %{z}<extra></extra>",
    )


def routing_grid_figure(info: RoutingGridInfo) -> go.Figure:
    """A heatmap of ``info``: continuous colours for loads, one colour per expert for sequences."""
    if info.kind == "sequence":
        heat = _sequence_heatmap(info)
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


# ---- compressed variants on the search's Pareto axes -------------------------------------------
class CompressionInfo(NamedTuple):
    """Compressed variants next to a search's results on the same objectives.

    ``on_front`` marks the variants no search result and no other variant dominates over all
    objectives; ``search`` is the Pareto info of the search results (None without them).
    """

    x: str
    y: str
    directions: dict[str, str]
    names: tuple[str, ...]
    xs: np.ndarray
    ys: np.ndarray
    on_front: np.ndarray
    search: ParetoInfo | None


_DEFAULT_OBJECTIVES = (("accuracy", "maximize"), ("params", "minimize"), ("macs", "minimize"))


def compression_info(
    report: pd.DataFrame,
    results: pd.DataFrame | None = None,
    objectives: Sequence[Objective | tuple[str, str]] | None = None,
    x: str | None = None,
    y: str | None = None,
) -> CompressionInfo:
    """Places a :func:`~nasviz.moe.compression_report` on a search's Pareto axes.

    Args:
        report: one row per variant with a ``name`` and the objective columns.
        results: a search's results (``Search.results``) with the same objective columns.
        objectives: the search's objectives (default: those of accuracy / params / macs that
            the report has); axes default to the first two, as in :func:`pareto_info`.
        x, y: objectives on the axes.
    """
    if objectives is None:
        objectives = [o for o in _DEFAULT_OBJECTIVES if o[0] in report.columns]
    specs = objective_specs(objectives)
    names = [o.name for o in specs]
    missing = [n for n in names if n not in report.columns]
    if missing:
        raise ConfigError(f"the report has no column(s) {missing}; columns: {list(report.columns)}")
    variants = report[["name", *names]].assign(
        trial=-1 - np.arange(len(report)), state="COMPLETE", feasible=True
    )
    frames = [variants]
    if results is not None:
        done = {"state": "COMPLETE", "feasible": True, "trial": np.arange(len(results))}
        frames.insert(0, results.assign(**{k: v for k, v in done.items() if k not in results}))
    joint = pareto_info(pd.concat(frames, ignore_index=True), specs, x, y)
    on_front = np.isin(variants["trial"].to_numpy(), joint.trials[joint.front])
    search = None if results is None else pareto_info(results, specs, joint.x, joint.y)
    return CompressionInfo(
        joint.x,
        joint.y,
        joint.directions,
        tuple(map(str, report["name"])),
        report[joint.x].to_numpy(dtype=float),
        report[joint.y].to_numpy(dtype=float),
        on_front,
        search,
    )


def compression_figure(
    info: CompressionInfo | pd.DataFrame,
    results: pd.DataFrame | None = None,
    objectives: Sequence[Objective | tuple[str, str]] | None = None,
    x: str | None = None,
    y: str | None = None,
) -> go.Figure:
    """The search's Pareto figure (when there are results) with the variants as labelled stars:
    filled when on the joint front, open when something dominates them.

    ``info`` is a :class:`CompressionInfo`, or a compression report that is first passed with
    the other arguments to :func:`compression_info`.
    """
    if not isinstance(info, CompressionInfo):
        info = compression_info(info, results, objectives, x, y)
    if info.search is not None:
        fig = pareto_figure(info.search, title="Search results and compressed variants")
    else:
        fig = go.Figure()
        fig.update_layout(
            xaxis_title=_axis_title(info.x, info.directions),
            yaxis_title=_axis_title(info.y, info.directions),
            template="plotly_white",
            height=420,
        )
    fig.add_scatter(
        x=info.xs,
        y=info.ys,
        mode="markers+text",
        text=list(info.names),
        textposition="top center",
        name="compressed variants",
        marker={
            "symbol": ["star" if f else "star-open" for f in info.on_front],
            "size": 15,
            "color": VARIANT,
        },
        hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>",
    )
    title = fig.layout.title.text or "Compressed variants"
    fig.update_layout(
        title=f"{title} — {int(info.on_front.sum())} of {len(info.names)} variants on the joint front"
    )
    return fig
