"""The Pareto scatter of a search's results.

One call draws it, ``pareto_figure(results, objectives)``, as optuna's ``plot_pareto_front``
does; inside, :func:`pareto_info` turns the results table (one row per evaluated arch, as
``Search.results`` returns it) into a small immutable record, and :func:`pareto_plot` draws that
record. Tests assert on the record; the live views reuse the drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nasviz.errors import ConfigError
from nasviz.objectives import Objective, as_objective
from nasviz.search import RESULT_COLUMNS, pareto_mask
from nasviz.viz._compat import keyword_only_after, old_info_call
from nasviz.viz._format import axis_format, axis_title, hover_text
from nasviz.viz._static import Figure
from nasviz.viz._style import failed_note, front_style, infeasible_style, point_style

__all__ = [
    "BOOKKEEPING",
    "ParetoInfo",
    "add_pareto",
    "arch_columns",
    "error_line",
    "info_title",
    "objective_specs",
    "pareto_figure",
    "pareto_info",
    "pareto_plot",
    "pareto_title",
    "set_axis",
]

BOOKKEEPING = RESULT_COLUMNS  # Search.results' columns that are neither arch nor objective


def objective_specs(objectives: Sequence[Objective | tuple[str, str]]) -> list[Objective]:
    """Objectives as Objective records (``(name, direction)`` pairs accepted)."""
    specs = [as_objective(o) for o in objectives]
    if len(specs) < 2:
        raise ConfigError(
            f"a Pareto view needs at least two objectives, got {[o.name for o in specs]}"
        )
    return specs


def arch_columns(results: pd.DataFrame, objectives: Sequence[Objective]) -> list[str]:
    """The columns of ``results`` that describe the arch (not objectives, not bookkeeping)."""
    skip = set(BOOKKEEPING) | {o.name for o in objectives}
    return [c for c in results.columns if c not in skip]


def error_line(row: pd.Series | dict[str, Any]) -> str:
    """``trial 4: ValueError: x0 = 0 is broken`` (first line of the error, shortened)."""
    error = str(row.get("error") or "failed").strip().splitlines()
    text = error[0] if error else "failed"
    return f"trial {int(row['trial'])}: {text[:120]}"


def pareto_title(
    title: str,
    evaluated: int,
    on_front: int,
    failed: int = 0,
    infeasible: int = 0,
    stopped: int = 0,
) -> str:
    """``Pareto front — 30 evaluated, 6 on the front, 2 failed, 1 infeasible, 4 stopped
    early``."""
    notes = [f"{failed} failed"] if failed else []
    notes += [f"{infeasible} infeasible"] if infeasible else []
    notes += [f"{stopped} stopped early"] if stopped else []
    return f"{title} — {evaluated} evaluated, {on_front} on the front" + "".join(
        f", {n}" for n in notes
    )


def info_title(info: ParetoInfo, title: str = "Pareto front", stopped: int = 0) -> str:
    """:func:`pareto_title` with the counts of ``info`` (and ``stopped`` early trials)."""
    return pareto_title(
        title,
        len(info.trials),
        int(info.front.sum()),
        len(info.failed),
        len(info.infeasible),
        stopped,
    )


def stopped_hover(row: Any, arch_cols: Sequence[str], objectives: Sequence[Any]) -> str:
    """A stopped trial's hover: its arch and last reported values, the step and the rung."""
    step, rung = row.get("step"), row.get("rung")
    where = "" if step is None or pd.isna(step) else f" at step {int(step)}"
    where += "" if rung is None or pd.isna(rung) else f" (rung {int(rung)})"
    return hover_text(row, arch_cols, objectives) + f"<br>stopped early{where}"


def stopped_rows(results: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Trials early stopping ended that reported every objective (drawn where they stopped)."""
    if "state" not in results:
        return results.iloc[:0]
    return results[(results["state"] == "PRUNED") & results[list(names)].notna().all(axis=1)]


class ParetoInfo(NamedTuple):
    """What the Pareto scatter shows.

    ``trials``/``xs``/``ys``/``colors``/``front`` describe completed feasible points (front
    marks the non-dominated ones over *all* objectives); ``front_order`` lists front trials
    sorted along x for the connecting line; ``failed`` lists failed trials (``failed_errors``
    their errors); ``infeasible`` completed trials outside the constraints, drawn at
    ``infeasible_xs``/``infeasible_ys``.
    """

    x: str
    y: str
    color: str | None
    directions: dict[str, str]
    trials: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    colors: np.ndarray | None
    front: np.ndarray
    front_order: np.ndarray
    hover: list[str]
    failed: np.ndarray
    infeasible: np.ndarray
    failed_errors: list[str]
    infeasible_xs: np.ndarray
    infeasible_ys: np.ndarray
    infeasible_hover: list[str]


def done_and_feasible(results: pd.DataFrame, names: list[str]) -> tuple[pd.Series, pd.Series]:
    """Per row: completed with every objective value, and within the constraints."""
    state = results["state"] if "state" in results else pd.Series("COMPLETE", index=results.index)
    feasible = (
        results["feasible"].astype(bool)
        if "feasible" in results
        else pd.Series(True, index=results.index)
    )
    done = (state == "COMPLETE") & results[names].notna().all(axis=1)
    return done, feasible


@keyword_only_after("x", "y", "color", "auto_color")
def pareto_info(
    results: pd.DataFrame,
    objectives: Sequence[Objective | tuple[str, str]],
    *,
    x: str | None = None,
    y: str | None = None,
    color: str | None = None,
    auto_color: bool = True,
) -> ParetoInfo:
    """Computes the scatter's content: axes default to the first two objectives, ``color``
    (any objective) defaults to the third when there is one (unless ``auto_color=False``)."""
    specs = objective_specs(objectives)
    names = [o.name for o in specs]
    x = x or names[0]
    y = y or names[1]
    if color is None and auto_color and len(names) > 2:
        color = next(n for n in names if n not in (x, y))
    for axis, name in (("x", x), ("y", y), ("color", color)):
        if name is not None and name not in names:
            raise ConfigError(f"{axis} axis {name!r} is not an objective; objectives: {names}")
    missing = [n for n in names if n not in results.columns]
    if missing:
        raise ConfigError(f"results have no column(s) {missing}; columns: {list(results.columns)}")
    if "trial" not in results:
        results = results.assign(trial=results.index)
    done, feasible = done_and_feasible(results, names)
    ok = results[done & feasible]
    values = ok[names].to_numpy(dtype=np.float64)
    front = (
        pareto_mask(values, [o.direction for o in specs]) if len(ok) else np.zeros(0, dtype=bool)
    )
    xs = ok[x].to_numpy(dtype=np.float64)
    order = np.flatnonzero(front)[np.argsort(xs[front], kind="stable")]
    arch_cols = arch_columns(results, specs)
    trials = ok["trial"].to_numpy()
    bad = results[done & ~feasible]
    failed = results[results["state"] == "FAIL"] if "state" in results else results.iloc[:0]
    return ParetoInfo(
        x,
        y,
        color,
        {o.name: o.direction for o in specs},
        trials,
        xs,
        ok[y].to_numpy(dtype=np.float64),
        ok[color].to_numpy(dtype=np.float64) if color else None,
        front,
        trials[order],
        [hover_text(r, arch_cols, specs) for _, r in ok.iterrows()],
        failed["trial"].to_numpy(),
        bad["trial"].to_numpy(),
        [error_line(r) for _, r in failed.iterrows()],
        bad[x].to_numpy(dtype=np.float64),
        bad[y].to_numpy(dtype=np.float64),
        [hover_text(r, arch_cols, specs) + "<br>infeasible" for _, r in bad.iterrows()],
    )


def _layout_key(axis: str) -> str:
    """``"x2"`` -> ``"xaxis2"`` (a trace's axis name -> the layout's key)."""
    return f"{axis[0]}axis{axis[1:]}"


def set_axis(fig: go.Figure, axis: str, name: str, direction: str | None) -> None:
    """Titles axis ``axis`` (``"x"``, ``"y2"``) after objective ``name`` (unit, direction) and
    formats its ticks (SI prefixes for counts)."""
    fig.layout[_layout_key(axis)].update(
        title_text=axis_title(name, direction), **axis_format(name)
    )


def add_pareto(fig: go.Figure, info: ParetoInfo, axes: tuple[str, str] = ("x", "y")) -> None:
    """Draws ``info`` on the subplot whose axes are ``axes`` (``("x", "y")``: the first):
    dominated points (trace 0 of those added), the front (1), infeasible points (2), the
    failed-evaluations note, axis titles and the colour axis."""
    on = {"xaxis": axes[0], "yaxis": axes[1]}
    dom = ~info.front
    hover = np.array(info.hover, dtype=object)
    points = point_style(info.color)
    if info.colors is not None:
        points["marker"] = {**points["marker"], "color": info.colors[dom]}
    fig.add_scatter(
        **points,
        **on,
        x=info.xs[dom],
        y=info.ys[dom],
        customdata=info.trials[dom],
        hovertext=hover[dom] if len(hover) else [],
    )
    pos = {t: i for i, t in enumerate(info.trials)}
    order = np.array([pos[t] for t in info.front_order], dtype=int)
    fig.add_scatter(
        **front_style(info.directions[info.x]),
        **on,
        x=info.xs[order],
        y=info.ys[order],
        customdata=info.trials[order],
        hovertext=hover[order] if len(hover) else [],
    )
    fig.add_scatter(
        **infeasible_style(),
        **on,
        x=info.infeasible_xs,
        y=info.infeasible_ys,
        customdata=info.infeasible,
        hovertext=info.infeasible_hover,
    )
    fig.add_annotation(failed_note(info.failed_errors, *axes))
    set_axis(fig, axes[0], info.x, info.directions[info.x])
    set_axis(fig, axes[1], info.y, info.directions[info.y])
    if info.color is not None:
        fig.update_layout(
            coloraxis={
                "colorscale": "Viridis",
                "colorbar": {"title": {"text": axis_title(info.color)}, **axis_format(info.color)},
            }
        )


def pareto_plot(info: ParetoInfo, *, title: str = "Pareto front") -> Figure:
    """Draws a :class:`ParetoInfo`: dominated points faded, the front highlighted and
    connected, infeasible points crossed, failures counted in a corner note."""
    fig = Figure()
    add_pareto(fig, info)
    fig.update_layout(
        template="nasviz",
        title=info_title(info, title),
        height=440,
        legend={"orientation": "h", "y": -0.22},
        # a click reports the point (no plotly selection: it would dim every other point)
        clickmode="event",
    )
    return fig


def pareto_figure(
    results: pd.DataFrame | ParetoInfo,
    objectives: Sequence[Objective | tuple[str, str]] | str | None = None,
    *,
    x: str | None = None,
    y: str | None = None,
    color: str | None = None,
    title: str = "Pareto front",
) -> Figure:
    """The Pareto scatter of a search's ``results`` (``Search.results`` or a table read back
    from CSV) on two of its ``objectives``; a third colours the points.

    ``pareto_figure(pareto_info(...), title)``, the previous release's call, still works (with
    a FutureWarning).
    """
    if old_info_call("pareto_figure", results, ParetoInfo, "pareto_figure(results, objectives)"):
        return pareto_plot(results, title=objectives if isinstance(objectives, str) else title)
    if objectives is None or isinstance(objectives, str):
        raise ConfigError(
            "pareto_figure(results, objectives) needs the objectives: Objectives or "
            "(name, direction) pairs, e.g. [('accuracy', 'maximize'), ('macs', 'minimize')]"
        )
    return pareto_plot(pareto_info(results, objectives, x=x, y=y, color=color), title=title)
