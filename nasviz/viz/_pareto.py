"""Pareto scatter, hypervolume curve and predictor-quality figures of a search's results.

Every figure is computed in two steps: an ``*_info`` function turns a results table (one row per
evaluated arch, as ``Search.results`` returns it) into a small immutable record, and a
``*_figure`` function draws that record. Tests assert on the records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nasviz.errors import ConfigError
from nasviz.objectives import Objective, as_objective
from nasviz.search import hypervolume_trace, pareto_mask

__all__ = [
    "HypervolumeInfo",
    "ParetoInfo",
    "PredictorInfo",
    "arch_columns",
    "hover_text",
    "hypervolume_figure",
    "hypervolume_info",
    "objective_specs",
    "pareto_figure",
    "pareto_info",
    "predictor_figure",
    "predictor_info",
]

FRONT = "#d62728"
DOMINATED = "#1f77b4"
FAILED = "#7f7f7f"
BOOKKEEPING = ("trial", "state", "feasible", "error", "traceback", "duration", "worker")


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


class ParetoInfo(NamedTuple):
    """What the Pareto scatter shows.

    ``trials``/``x``/``y``/``color``/``front`` describe completed feasible points (front marks
    the non-dominated ones over *all* objectives); ``front_order`` lists front trials sorted
    along x for the connecting line; ``failed`` lists failed trials; ``infeasible`` completed
    trials outside the constraints.
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


def pareto_info(
    results: pd.DataFrame,
    objectives: Sequence[Objective | tuple[str, str]],
    x: str | None = None,
    y: str | None = None,
    color: str | None = None,
) -> ParetoInfo:
    """Computes the scatter's content: axes default to the first two objectives, ``color``
    (any objective) defaults to the third when there is one."""
    specs = objective_specs(objectives)
    names = [o.name for o in specs]
    x = x or names[0]
    y = y or names[1]
    if color is None and len(names) > 2:
        color = next(n for n in names if n not in (x, y))
    for axis, name in (("x", x), ("y", y), ("color", color)):
        if name is not None and name not in names:
            raise ConfigError(f"{axis} axis {name!r} is not an objective; objectives: {names}")
    missing = [n for n in names if n not in results.columns]
    if missing:
        raise ConfigError(f"results have no column(s) {missing}; columns: {list(results.columns)}")
    state = results["state"] if "state" in results else pd.Series("COMPLETE", index=results.index)
    feasible = (
        results["feasible"].astype(bool)
        if "feasible" in results
        else pd.Series(True, index=results.index)
    )
    done = (state == "COMPLETE") & results[names].notna().all(axis=1)
    ok = results[done & feasible]
    values = ok[names].to_numpy(dtype=np.float64)
    front = (
        pareto_mask(values, [o.direction for o in specs]) if len(ok) else np.zeros(0, dtype=bool)
    )
    xs = ok[x].to_numpy(dtype=np.float64)
    order = np.flatnonzero(front)[np.argsort(xs[front], kind="stable")]
    arch_cols = arch_columns(results, specs)
    trials = ok["trial"].to_numpy() if "trial" in ok else ok.index.to_numpy()
    hover = [hover_text(r, arch_cols, specs) for _, r in ok.assign(trial=trials).iterrows()]
    all_trials = results["trial"] if "trial" in results else results.index.to_series()
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
        hover,
        all_trials[state == "FAIL"].to_numpy(),
        all_trials[done & ~feasible].to_numpy(),
    )


def _axis_title(name: str, directions: dict[str, str]) -> str:
    arrow = "↓" if directions[name] == "minimize" else "↑"
    return f"{name} ({arrow} better)"


def pareto_figure(info: ParetoInfo, title: str = "Pareto front") -> go.Figure:
    """Dominated points faded, the front highlighted and connected, failures counted."""
    fig = go.Figure()
    dom = ~info.front
    marker: dict[str, Any] = {"color": DOMINATED, "opacity": 0.35, "size": 7}
    if info.colors is not None:
        marker = {
            "color": info.colors[dom],
            "colorscale": "Viridis",
            "opacity": 0.45,
            "size": 7,
            "colorbar": {"title": info.color},
            "showscale": True,
        }
    hover = np.array(info.hover, dtype=object)
    fig.add_scatter(
        x=info.xs[dom],
        y=info.ys[dom],
        mode="markers",
        name="evaluated",
        marker=marker,
        customdata=info.trials[dom],
        hovertext=hover[dom] if len(hover) else [],
        hoverinfo="text",
    )
    pos = {t: i for i, t in enumerate(info.trials)}
    order = np.array([pos[t] for t in info.front_order], dtype=int)
    fig.add_scatter(
        x=info.xs[order],
        y=info.ys[order],
        mode="lines+markers",
        name="Pareto front",
        line={"color": FRONT, "shape": "hv" if info.directions[info.x] == "minimize" else "vh"},
        marker={"color": FRONT, "size": 10, "line": {"color": "white", "width": 1}},
        customdata=info.trials[order],
        hovertext=hover[order] if len(hover) else [],
        hoverinfo="text",
    )
    notes = []
    if len(info.failed):
        notes.append(f"{len(info.failed)} failed")
    if len(info.infeasible):
        notes.append(f"{len(info.infeasible)} infeasible")
    fig.update_layout(
        title=f"{title} — {len(info.trials)} evaluated, {int(info.front.sum())} on the front"
        + (f", {', '.join(notes)}" if notes else ""),
        xaxis_title=_axis_title(info.x, info.directions),
        yaxis_title=_axis_title(info.y, info.directions),
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
    state = results["state"] if "state" in results else pd.Series("COMPLETE", index=results.index)
    feasible = (
        results["feasible"].astype(bool)
        if "feasible" in results
        else pd.Series(True, index=results.index)
    )
    ok = ((state == "COMPLETE") & feasible & results[names].notna().all(axis=1)).to_numpy()
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


def hypervolume_figure(info: HypervolumeInfo) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(
        x=info.evaluations,
        y=info.hypervolume,
        mode="lines",
        name="hypervolume",
        line={"color": FRONT},
    )
    ref = ", ".join(f"{v:.4g}" for v in info.reference)
    fig.update_layout(
        title=f"Hypervolume vs evaluations (reference {ref})",
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


def predictor_figure(info: PredictorInfo) -> go.Figure:
    """Kendall tau per cycle (left) and predicted vs measured on held-out archs (right)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Kendall tau per cycle", "predicted vs measured")
    )
    for name, tau in info.tau.items():
        fig.add_scatter(
            x=info.cycles, y=tau, mode="lines+markers", name=f"{name} tau", row=1, col=1
        )
    for name, pred in info.predicted.items():
        meas = info.measured[name]
        fig.add_scatter(
            x=meas, y=pred, mode="markers", name=f"{name}", row=1, col=2, marker={"opacity": 0.6}
        )
        if len(meas):
            lo, hi = float(np.nanmin(meas)), float(np.nanmax(meas))
            fig.add_scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                line={"dash": "dot", "color": "grey"},
                showlegend=False,
                row=1,
                col=2,
            )
    fig.update_layout(
        template="plotly_white", height=300, margin={"l": 50, "r": 20, "t": 40, "b": 40}
    )
    fig.update_yaxes(range=[-1, 1], row=1, col=1)
    return fig
