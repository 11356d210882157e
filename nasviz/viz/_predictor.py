"""How well the predictor strategy's accuracy model ranks archs before seeing them: Kendall tau
(and MAPE) per cycle, and predicted vs measured values of each batch held out from training.

``predictor_figure(search.cycles)`` draws it; :func:`predictor_info` reads the cycles table into
a record that tests assert on, and :func:`predictor_plot` draws that record.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from nasviz.viz._compat import old_info_call
from nasviz.viz._format import axis_format, axis_title
from nasviz.viz._static import Figure

__all__ = [
    "PredictorInfo",
    "predictor_figure",
    "predictor_info",
    "predictor_placeholder",
    "predictor_plot",
    "predictor_traces",
]


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


def predictor_placeholder(info: PredictorInfo) -> str | None:
    """What the panel says while it has nothing to draw (None once a cycle was measured)."""
    if len(info.cycles):
        return None
    return "the predictor's first cycle is measured after its first random batch"


def predictor_plot(info: PredictorInfo) -> Figure:
    """Draws a :class:`PredictorInfo`: Kendall tau per cycle (left), predicted vs measured on
    held-out archs (right); a note in each panel until the first cycle."""
    from plotly.subplots import make_subplots

    fig = Figure(
        make_subplots(
            rows=1,
            cols=2,
            subplot_titles=("Kendall tau per cycle", "predicted vs measured (held out)"),
            horizontal_spacing=0.14,
        )
    )
    for trace, col in predictor_traces(info):
        fig.add_scatter(**trace, row=1, col=col)
    fig.update_layout(template="nasviz", height=320, margin={"t": 60})
    fig.update_yaxes(title_text="Kendall tau", range=[-1.05, 1.05], row=1, col=1)
    fig.update_xaxes(title_text="cycle", row=1, col=1)
    name = next(iter(info.predicted), None)
    if name is not None:
        fig.update_xaxes(
            title_text=f"measured {axis_title(name)}", **axis_format(name), row=1, col=2
        )
        fig.update_yaxes(
            title_text=f"predicted {axis_title(name)}", **axis_format(name), row=1, col=2
        )
    note = predictor_placeholder(info)
    if note is not None:
        for axes in (("x", "y"), ("x2", "y2")):
            fig.add_annotation(
                text=note,
                xref=f"{axes[0]} domain",
                yref=f"{axes[1]} domain",
                x=0.5,
                y=0.5,
                showarrow=False,
                font={"color": "#888"},
            )
    return fig


def predictor_figure(cycles: pd.DataFrame | PredictorInfo) -> Figure:
    """The predictor's quality per cycle, from ``Search.cycles``. ``predictor_figure(info)``
    (previous release) still works, with a FutureWarning."""
    if old_info_call("predictor_figure", cycles, PredictorInfo, "predictor_figure(search.cycles)"):
        return predictor_plot(cycles)
    return predictor_plot(predictor_info(cycles))
