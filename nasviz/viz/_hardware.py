"""Predicted vs measured latency of a search's archs (an honest check) as a figure.

Compute (:func:`nasviz.hardware.check_latency`) -> info (:func:`latency_check_info`, tested)
-> plotly figure (:func:`latency_check_figure`). Each arch is a point at (predicted, measured)
with its measured 10th-90th percentile as an error bar; the diagonal is a perfect prediction;
with a latency budget, the budget's lines split the plane and the archs that met it on paper
but not in reality are drawn as red crosses and counted in the title.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nasviz.errors import ConfigError
from nasviz.viz._format import format_value
from nasviz.viz._pareto import BOOKKEEPING
from nasviz.viz._static import Figure
from nasviz.viz._style import DOMINATED, FRONT

__all__ = ["LatencyCheckInfo", "latency_check_figure", "latency_check_info"]

NEEDED = ("predicted_ms", "measured_ms", "p10_ms", "p90_ms", "violated", "bound_ms")


class LatencyCheckInfo(NamedTuple):
    """What the figure draws, one entry per arch.

    ``low`` / ``high``: the measured 10th / 90th percentiles; ``violated``: predicted within
    the bound, measured over it; ``bound``: the budget (None without one); ``mape``: mean
    absolute percentage error of the predictions; ``limits``: the range both axes share.
    """

    predicted: np.ndarray
    measured: np.ndarray
    low: np.ndarray
    high: np.ndarray
    violated: np.ndarray
    hover: tuple[str, ...]
    bound: float | None
    mape: float
    limits: tuple[float, float]
    title: str


def latency_check_info(check: pd.DataFrame, dims: Sequence[str] | None = None) -> LatencyCheckInfo:
    """The figure's data from :func:`~nasviz.hardware.check_latency`'s DataFrame.

    Args:
        check: the check's rows.
        dims: the arch columns shown on hover; None: every column before ``predicted_ms``
            except the search's bookkeeping ones (trial, state, ...).
    """
    missing = [c for c in NEEDED if c not in check.columns]
    if missing:
        raise ConfigError(f"latency_check_info needs check_latency's columns; missing {missing}")
    if dims is None:
        before = list(check.columns[: list(check.columns).index("predicted_ms")])
        dims = [c for c in before if c not in BOOKKEEPING]
    predicted = check["predicted_ms"].to_numpy(dtype=np.float64)
    measured = check["measured_ms"].to_numpy(dtype=np.float64)
    low = check["p10_ms"].to_numpy(dtype=np.float64)
    high = check["p90_ms"].to_numpy(dtype=np.float64)
    violated = check["violated"].to_numpy(dtype=bool)
    bounds = check["bound_ms"].dropna().unique()
    bound = float(bounds[0]) if len(bounds) else None
    hover = tuple(
        "<br>".join(
            [f"{d} = {row[d]}" for d in dims]
            + [
                f"predicted {format_value('latency', row['predicted_ms'])}",
                f"measured {format_value('latency', row['measured_ms'])} "
                f"(p10-p90 {row['p10_ms']:.3g}-{format_value('latency', row['p90_ms'])})",
            ]
        )
        for _, row in check.iterrows()
    )
    mape = float(np.mean(np.abs(predicted - measured) / measured) * 100) if len(check) else 0.0
    values = np.concatenate([predicted, low, high, [bound] if bound is not None else []])
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    pad = 0.05 * (hi - lo or hi or 1.0)
    title = f"Latency: predicted vs measured ({len(check)} archs, MAPE {mape:.1f}%)"
    if bound is not None:
        title += f"; {int(violated.sum())} over the {bound:.3g} ms budget in reality"
    return LatencyCheckInfo(
        predicted, measured, low, high, violated, hover, bound, mape, (lo - pad, hi + pad), title
    )


def latency_check_figure(info: LatencyCheckInfo) -> Figure:
    """Scatter of predicted (x) vs measured (y) latency with the diagonal and the budget."""
    lo, hi = info.limits
    fig = Figure()
    fig.add_trace(
        go.Scatter(
            x=[lo, hi],
            y=[lo, hi],
            mode="lines",
            line={"dash": "dash", "color": "#999999"},
            name="predicted = measured",
            hoverinfo="skip",
        )
    )
    for name, mask, marker in (
        ("as predicted", ~info.violated, {"color": DOMINATED, "size": 8}),
        (
            "over budget in reality",
            info.violated,
            {"color": FRONT, "size": 11, "symbol": "x"},
        ),
    ):
        if not mask.any():
            continue
        fig.add_trace(
            go.Scatter(
                x=info.predicted[mask],
                y=info.measured[mask],
                mode="markers",
                marker=marker,
                name=name,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": (info.high - info.measured)[mask],
                    "arrayminus": (info.measured - info.low)[mask],
                    "thickness": 1,
                },
                hovertext=[h for h, m in zip(info.hover, mask, strict=True) if m],
                hoverinfo="text",
            )
        )
    if info.bound is not None:
        fig.add_vline(x=info.bound, line={"dash": "dot", "color": FRONT})
        fig.add_hline(
            y=info.bound,
            line={"dash": "dot", "color": FRONT},
            annotation_text=f"budget {info.bound:.3g} ms",
        )
    fig.update_layout(
        title=info.title,
        xaxis={"title": "predicted latency (ms)", "range": [lo, hi]},
        yaxis={"title": "measured latency (ms)", "range": [lo, hi]},
        template="nasviz",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
