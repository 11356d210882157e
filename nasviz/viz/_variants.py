"""Compressed or pruned variants on a search's Pareto axes: a compression report (MoE expert
pruning and merging) or a pruning sweep next to the searched subnets, on the same objectives.

Variants are stars, one legend entry per variant (or per ``group``, e.g. a pruning method), so
that their names never overlap on the plot; filled stars are on the joint front (nothing, no
search result and no other variant, dominates them), open ones are dominated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.colors as pc

from nasviz.errors import ConfigError
from nasviz.objectives import Objective
from nasviz.viz._compat import keyword_only_after
from nasviz.viz._format import labelled
from nasviz.viz._pareto import ParetoInfo, objective_specs, pareto_info, pareto_plot, set_axis
from nasviz.viz._static import Figure
from nasviz.viz._style import VARIANT

__all__ = ["CompressionInfo", "compression_figure", "compression_info"]


class CompressionInfo(NamedTuple):
    """Variants next to a search's results on the same objectives.

    ``on_front`` marks the variants no search result and no other variant dominates over all
    objectives; ``search`` is the Pareto info of the search results (None without them);
    ``groups`` names each variant's legend entry (its name, unless grouped).
    """

    x: str
    y: str
    directions: dict[str, str]
    names: tuple[str, ...]
    xs: np.ndarray
    ys: np.ndarray
    on_front: np.ndarray
    search: ParetoInfo | None
    groups: tuple[str, ...] = ()


_DEFAULT_OBJECTIVES = (
    ("accuracy", "maximize"),
    ("perplexity", "minimize"),  # Hugging Face language models' reports
    ("params", "minimize"),
    ("macs", "minimize"),
    ("latency", "minimize"),
)


@keyword_only_after("x", "y")
def compression_info(
    report: pd.DataFrame,
    results: pd.DataFrame | None = None,
    objectives: Sequence[Objective | tuple[str, str]] | None = None,
    *,
    x: str | None = None,
    y: str | None = None,
    group: str | None = None,
) -> CompressionInfo:
    """Places variants (a :func:`~nasviz.moe.compression_report`, a pruning sweep's results)
    on a search's Pareto axes.

    Args:
        report: one row per variant with the objective columns and a ``name`` (or ``group``).
        results: a search's results (``Search.results``) with the same objective columns.
        objectives: the search's objectives (default: those of accuracy / params / macs that
            the report has); axes default to the first two, as in :func:`pareto_info`.
        x, y: objectives on the axes.
        group: a column of ``report`` whose values are the legend entries (``"method"`` for a
            pruning sweep); default: one entry per variant.
    """
    if objectives is None:
        objectives = [o for o in _DEFAULT_OBJECTIVES if o[0] in report.columns]
    specs = objective_specs(objectives)
    names = [o.name for o in specs]
    missing = [n for n in names if n not in report.columns]
    if group is not None and group not in report.columns:
        missing.append(group)
    if "name" not in report.columns and group is None:
        missing.append("name")
    if missing:
        raise ConfigError(f"the report has no column(s) {missing}; columns: {list(report.columns)}")
    labels = (
        report["name"].astype(str)
        if "name" in report.columns
        else report[group].astype(str) + " #" + pd.Series(range(len(report))).astype(str)
    )
    variants = report[names].assign(
        trial=-1 - np.arange(len(report)), state="COMPLETE", feasible=True
    )
    frames = [variants]
    if results is not None:
        done = {"state": "COMPLETE", "feasible": True, "trial": np.arange(len(results))}
        frames.insert(0, results.assign(**{k: v for k, v in done.items() if k not in results}))
    joint = pareto_info(pd.concat(frames, ignore_index=True), specs, x=x, y=y)
    on_front = np.isin(variants["trial"].to_numpy(), joint.trials[joint.front])
    search = None if results is None else pareto_info(results, specs, x=joint.x, y=joint.y)
    return CompressionInfo(
        joint.x,
        joint.y,
        joint.directions,
        tuple(labels),
        report[joint.x].to_numpy(dtype=float),
        report[joint.y].to_numpy(dtype=float),
        on_front,
        search,
        tuple(map(str, report[group])) if group is not None else tuple(labels),
    )


def _colors(n: int) -> list[str]:
    palette = [VARIANT, *[c for c in pc.qualitative.D3 if c != VARIANT]]
    return [palette[i % len(palette)] for i in range(n)]


@keyword_only_after("x", "y")
def compression_figure(
    info: CompressionInfo | pd.DataFrame,
    results: pd.DataFrame | None = None,
    objectives: Sequence[Objective | tuple[str, str]] | None = None,
    *,
    x: str | None = None,
    y: str | None = None,
    group: str | None = None,
    title: str | None = None,
) -> Figure:
    """The search's Pareto figure (when there are results) with the variants as stars, one
    legend entry per variant or ``group``: filled when on the joint front, open when something
    dominates them; names and values on hover.

    ``info`` is a :class:`CompressionInfo`, or a report that is first passed with the other
    arguments to :func:`compression_info`.
    """
    if not isinstance(info, CompressionInfo):
        info = compression_info(info, results, objectives, x=x, y=y, group=group)
    if info.search is not None:
        fig = pareto_plot(info.search, title=title or "Search results and variants")
    else:
        fig = Figure()
        fig.update_layout(template="nasviz", height=440, title=title or "Variants")
        set_axis(fig, "x", info.x, info.directions[info.x])
        set_axis(fig, "y", info.y, info.directions[info.y])
    groups = info.groups or info.names
    order = list(dict.fromkeys(groups))
    for color, label in zip(_colors(len(order)), order, strict=True):
        mine = np.array([g == label for g in groups])
        hover = [
            f"{n}<br>{labelled(info.x, a)} · {labelled(info.y, b)}"
            for n, a, b in zip(
                np.array(info.names)[mine], info.xs[mine], info.ys[mine], strict=True
            )
        ]
        fig.add_scatter(
            x=info.xs[mine],
            y=info.ys[mine],
            mode="markers",
            name=label,
            legendgroup="variants",
            legendgrouptitle_text="variants (★ on the joint front)",
            hovertext=hover,
            hoverinfo="text",
            marker={
                "symbol": ["star" if f else "star-open" for f in info.on_front[mine]],
                "size": 15,
                "color": color,
                "line": {"width": 1, "color": color},
            },
        )
    text = fig.layout.title.text or ""
    fig.update_layout(
        title=f"{text}<br><sup>{int(info.on_front.sum())} of {len(info.names)} variants on "
        "the joint front</sup>",
        legend={"orientation": "v", "y": 1.0, "x": 1.02, "xanchor": "left"},
        margin={"r": 200},
    )
    return fig
