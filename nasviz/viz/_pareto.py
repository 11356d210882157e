"""Pareto scatter, hypervolume curve and predictor-quality figures of a search's results.

Every figure is computed in two steps: an ``*_info`` function turns a results table (one row per
evaluated arch, as ``Search.results`` returns it) into a small immutable record, and a
``*_figure`` function draws that record. Tests assert on the records.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nasviz.errors import ConfigError
from nasviz.objectives import Objective, as_objective
from nasviz.search import hypervolume_trace, pareto_mask

__all__ = [
    "FRONT",
    "HYPERVOLUME_STYLE",
    "HypervolumeInfo",
    "ParetoInfo",
    "PredictorInfo",
    "add_pareto",
    "arch_columns",
    "error_line",
    "failed_note",
    "front_style",
    "hover_text",
    "hypervolume_figure",
    "hypervolume_info",
    "hypervolume_title",
    "infeasible_style",
    "info_title",
    "objective_specs",
    "pareto_figure",
    "pareto_info",
    "pareto_title",
    "point_style",
    "predictor_figure",
    "predictor_info",
    "predictor_traces",
]

FRONT = "#d62728"
DOMINATED = "#1f77b4"
FAILED = "#7f7f7f"
BOOKKEEPING = ("trial", "state", "feasible", "error", "traceback", "duration", "worker")
#: Failed evaluations listed in the hover text of the "failed" note (the latest ones).
ERRORS_LISTED = 12


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


def hover_text(row: pd.Series, arch_cols: Sequence[str], objectives: Sequence[Objective]) -> str:
    """``trial 12<br>accuracy=97.1 macs=1.2e+04<br>depth.0=2 ...`` for hover labels."""
    metrics = " ".join(
        f"{o.name}={row[o.name]:.4g}" for o in objectives if pd.notna(row.get(o.name))
    )
    arch = " ".join(f"{c}={row[c]}" for c in arch_cols)
    return f"trial {int(row['trial'])}<br>{metrics}<br>{arch}"


def error_line(row: pd.Series | dict[str, Any]) -> str:
    """``trial 4: ValueError: x0 = 0 is broken`` (first line of the error, shortened)."""
    error = str(row.get("error") or "failed").strip().splitlines()
    text = error[0] if error else "failed"
    return f"trial {int(row['trial'])}: {text[:120]}"


# ---- shared trace styles (the static figures and the live widgets draw alike) -----------------
def point_style(color: str | None = None) -> dict[str, Any]:
    """Evaluated (dominated) points: faded; coloured through the ``coloraxis`` when ``color``."""
    marker: dict[str, Any] = {"color": DOMINATED, "opacity": 0.35, "size": 7}
    if color is not None:
        marker = {"coloraxis": "coloraxis", "opacity": 0.5, "size": 7}
    return {"mode": "markers", "name": "evaluated", "marker": marker, "hoverinfo": "text"}


def front_style(x_direction: str) -> dict[str, Any]:
    """The front: highlighted markers joined by a staircase along x."""
    return {
        "mode": "lines+markers",
        "name": "Pareto front",
        "hoverinfo": "text",
        "line": {"color": FRONT, "shape": "hv" if x_direction == "minimize" else "vh"},
        "marker": {"color": FRONT, "size": 10, "line": {"color": "white", "width": 1}},
    }


def infeasible_style() -> dict[str, Any]:
    """Completed archs outside the search's constraints: grey crosses, never on the front."""
    return {
        "mode": "markers",
        "name": "infeasible (constraints)",
        "hoverinfo": "text",
        "marker": {"symbol": "x-thin", "size": 8, "line": {"color": FAILED, "width": 1.5}},
    }


def failed_note(errors: Sequence[str], xref: str = "x", yref: str = "y") -> dict[str, Any]:
    """An annotation in the scatter's top-right corner counting failed evaluations (they have
    no objective values to plot); hovering it lists the latest errors. Hidden when none."""
    shown = [html.escape(e) for e in list(errors)[-ERRORS_LISTED:]]
    more = len(errors) - len(shown)
    hover = "<br>".join(([f"... {more} more"] if more else []) + shown)
    return {
        "name": "failed",
        "text": f"✕ {len(errors)} failed",
        "visible": bool(len(errors)),
        "hovertext": hover or None,
        "xref": f"{xref} domain",
        "yref": f"{yref} domain",
        "x": 1.0,
        "y": 1.0,
        "xanchor": "right",
        "yanchor": "top",
        "showarrow": False,
        "font": {"color": FAILED, "size": 13},
        "bgcolor": "rgba(255,255,255,0.85)",
        "bordercolor": FAILED,
        "borderwidth": 1,
    }


def pareto_title(
    title: str, evaluated: int, on_front: int, failed: int = 0, infeasible: int = 0
) -> str:
    """``Pareto front — 30 evaluated, 6 on the front, 2 failed, 1 infeasible``."""
    notes = [f"{failed} failed"] if failed else []
    notes += [f"{infeasible} infeasible"] if infeasible else []
    return f"{title} — {evaluated} evaluated, {on_front} on the front" + "".join(
        f", {n}" for n in notes
    )


def info_title(info: ParetoInfo, title: str = "Pareto front") -> str:
    """:func:`pareto_title` with the counts of ``info``."""
    return pareto_title(
        title, len(info.trials), int(info.front.sum()), len(info.failed), len(info.infeasible)
    )


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


def _done_and_feasible(results: pd.DataFrame, names: list[str]) -> tuple[pd.Series, pd.Series]:
    state = results["state"] if "state" in results else pd.Series("COMPLETE", index=results.index)
    feasible = (
        results["feasible"].astype(bool)
        if "feasible" in results
        else pd.Series(True, index=results.index)
    )
    done = (state == "COMPLETE") & results[names].notna().all(axis=1)
    return done, feasible


def pareto_info(
    results: pd.DataFrame,
    objectives: Sequence[Objective | tuple[str, str]],
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
    done, feasible = _done_and_feasible(results, names)
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


def _axis_title(name: str, directions: dict[str, str]) -> str:
    arrow = "↓" if directions[name] == "minimize" else "↑"
    return f"{name} ({arrow} better)"


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
    fig.layout[_layout_key(axes[0])].title.text = _axis_title(info.x, info.directions)
    fig.layout[_layout_key(axes[1])].title.text = _axis_title(info.y, info.directions)
    if info.color is not None:
        fig.update_layout(coloraxis={"colorscale": "Viridis", "colorbar": {"title": info.color}})


def pareto_figure(info: ParetoInfo, title: str = "Pareto front") -> go.Figure:
    """Dominated points faded, the front highlighted and connected, infeasible points crossed,
    failures counted in a corner note."""
    fig = go.Figure()
    add_pareto(fig, info)
    fig.update_layout(
        title=info_title(info, title),
        template="plotly_white",
        height=420,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.2},
        clickmode="event+select",
    )
    return fig


class HypervolumeInfo(NamedTuple):
    """Hypervolume after each evaluation (failed ones included in the count)."""

    evaluations: np.ndarray
    hypervolume: np.ndarray
    reference: np.ndarray


def hypervolume_info(
    results: pd.DataFrame,
    objectives: Sequence[Objective | tuple[str, str]],
    reference: Sequence[float] | None = None,
) -> HypervolumeInfo:
    """The hypervolume trace; ``reference`` defaults to the nadir moved 10% of each range
    (``nasviz.search.default_reference``)."""
    from nasviz.search import default_reference

    specs = objective_specs(objectives)
    names, directions = [o.name for o in specs], [o.direction for o in specs]
    done, feasible = _done_and_feasible(results, names)
    ok = (done & feasible).to_numpy()
    values = results[names].to_numpy(dtype=np.float64)
    n = len(results)
    if not ok.any():
        ref = (
            np.asarray(reference, dtype=np.float64)
            if reference is not None
            else np.full(len(names), np.nan)
        )
        return HypervolumeInfo(np.arange(1, n + 1), np.zeros(n), ref)
    ref = np.asarray(
        reference if reference is not None else default_reference(values[ok], directions),
        dtype=np.float64,
    )
    trace = np.zeros(n)
    trace[ok] = hypervolume_trace(values[ok], directions, ref)
    return HypervolumeInfo(np.arange(1, n + 1), np.maximum.accumulate(trace), ref)


HYPERVOLUME_STYLE = {
    "mode": "lines",
    "name": "hypervolume",
    "line": {"color": FRONT, "shape": "hv"},
}


def hypervolume_title(reference: Sequence[float] | None) -> str:
    """``Hypervolume vs evaluations (reference 2, 2)``."""
    if reference is None or not np.all(np.isfinite(np.asarray(reference, dtype=np.float64))):
        return "Hypervolume vs evaluations"
    return "Hypervolume vs evaluations (reference " + ", ".join(f"{v:.4g}" for v in reference) + ")"


def hypervolume_figure(info: HypervolumeInfo) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(**HYPERVOLUME_STYLE, x=info.evaluations, y=info.hypervolume)
    fig.update_layout(
        title=hypervolume_title(info.reference),
        xaxis_title="evaluations",
        yaxis_title="hypervolume",
        template="plotly_white",
        height=300,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    return fig


class PredictorInfo(NamedTuple):
    """Predictor quality per cycle: Kendall tau (and MAPE) per predicted objective."""

    cycles: np.ndarray
    tau: dict[str, np.ndarray]
    mape: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    measured: dict[str, np.ndarray]


def predictor_info(cycles: pd.DataFrame) -> PredictorInfo:
    """Reads ``Search.cycles``: columns ``<objective>_kendall_tau`` / ``<objective>_mape`` per cycle and,
    when present, ``<objective>_predicted`` / ``<objective>_measured`` lists of the held-out batch."""
    if cycles is None or cycles.empty:
        return PredictorInfo(np.zeros(0), {}, {}, {}, {})
    cyc = cycles["cycle"].to_numpy() if "cycle" in cycles else np.arange(len(cycles))
    tau = {
        c[: -len("_kendall_tau")]: cycles[c].to_numpy(dtype=np.float64)
        for c in cycles.columns
        if c.endswith("_kendall_tau")
    }
    mape = {
        c[: -len("_mape")]: cycles[c].to_numpy(dtype=np.float64)
        for c in cycles.columns
        if c.endswith("_mape")
    }
    predicted: dict[str, np.ndarray] = {}
    measured: dict[str, np.ndarray] = {}
    for name in tau:
        p, m = f"{name}_predicted", f"{name}_measured"
        if p in cycles and m in cycles:
            pairs = [
                (a, b)
                for ps, ms in zip(cycles[p], cycles[m], strict=True)
                if isinstance(ps, list | tuple)
                for a, b in zip(ps, ms, strict=True)
            ]
            predicted[name] = np.array([a for a, _ in pairs], dtype=np.float64)
            measured[name] = np.array([b for _, b in pairs], dtype=np.float64)
    return PredictorInfo(cyc, tau, mape, predicted, measured)


def predictor_traces(info: PredictorInfo) -> list[tuple[dict[str, Any], int]]:
    """The predictor panel's traces as ``(trace, column)``: column 1 holds Kendall tau per
    cycle, column 2 predicted vs measured on the held-out archs (with the y = x diagonal)."""
    traces: list[tuple[dict[str, Any], int]] = []
    for name, tau in info.tau.items():
        trace = {"x": info.cycles, "y": tau, "mode": "lines+markers", "name": f"{name} tau"}
        traces.append((trace, 1))
    for name, pred in info.predicted.items():
        meas = info.measured[name]
        trace = {"x": meas, "y": pred, "mode": "markers", "name": name, "marker": {"opacity": 0.6}}
        traces.append((trace, 2))
        if len(meas):
            lo, hi = float(np.nanmin(meas)), float(np.nanmax(meas))
            diagonal = {
                "x": [lo, hi],
                "y": [lo, hi],
                "mode": "lines",
                "line": {"dash": "dot", "color": "grey"},
                "showlegend": False,
                "hoverinfo": "skip",
            }
            traces.append((diagonal, 2))
    return traces


def predictor_figure(info: PredictorInfo) -> go.Figure:
    """Kendall tau per cycle (left) and predicted vs measured on held-out archs (right)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Kendall tau per cycle", "predicted vs measured")
    )
    for trace, col in predictor_traces(info):
        fig.add_scatter(**trace, row=1, col=col)
    fig.update_layout(
        template="plotly_white", height=300, margin={"l": 50, "r": 20, "t": 40, "b": 40}
    )
    fig.update_yaxes(range=[-1, 1], row=1, col=1)
    return fig
