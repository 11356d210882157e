"""Supernet training figures: loss per sandwich member, validation accuracy per epoch."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from nasviz.viz._compat import old_info_call
from nasviz.viz._static import Figure

__all__ = [
    "MEMBER_COLORS",
    "LossInfo",
    "accuracy_figure",
    "accuracy_traces",
    "loss_figure",
    "loss_info",
    "loss_plot",
    "training_layout",
]

MEMBER_COLORS = {"largest": "#d62728", "smallest": "#1f77b4", "random (mean)": "#7f7f7f"}


class LossInfo(NamedTuple):
    """Steps and loss per shown member; random subnets are averaged into ``random (mean)``."""

    steps: dict[str, np.ndarray]
    losses: dict[str, np.ndarray]


def loss_info(history: pd.DataFrame) -> LossInfo:
    """From ``TrainingRun.history`` (step, epoch, member, loss, lr)."""
    if history is None or history.empty:
        return LossInfo({}, {})
    frame = history.assign(
        member=history["member"].where(~history["member"].str.startswith("random"), "random (mean)")
    )
    mean = frame.groupby(["member", "step"], sort=True)["loss"].mean()
    steps, losses = {}, {}
    for member in mean.index.get_level_values(0).unique():
        series = mean.loc[member]
        steps[member] = series.index.to_numpy()
        losses[member] = series.to_numpy(dtype=np.float64)
    return LossInfo(steps, losses)


def loss_plot(info: LossInfo, *, title: str = "Training loss per sandwich member") -> Figure:
    """Draws a :class:`LossInfo`: loss per step of each shown member."""
    fig = Figure()
    for member, steps in info.steps.items():
        fig.add_scatter(
            x=steps,
            y=info.losses[member],
            mode="lines",
            name=member,
            line={"color": MEMBER_COLORS.get(member, "#9467bd")},
        )
    fig.update_layout(
        title=title,
        xaxis_title="step",
        yaxis_title="loss",
        template="nasviz",
        height=320,
        width=560,
    )
    return fig


def loss_figure(
    history: pd.DataFrame | LossInfo, title: str = "Training loss per sandwich member"
) -> Figure:
    """Loss per step of each sandwich member, from ``TrainingRun.history``.
    ``loss_figure(loss_info(history))`` (previous release) still works, with a FutureWarning."""
    if old_info_call("loss_figure", history, LossInfo, "loss_figure(run.history)"):
        return loss_plot(history, title=title)
    return loss_plot(loss_info(history), title=title)


def accuracy_traces(evaluations: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Validation accuracy of the largest and smallest subnets per evaluated epoch, as traces."""
    traces: list[dict[str, Any]] = []
    if evaluations is None or evaluations.empty:
        return traces
    for member in ("largest", "smallest"):
        column = f"val_{member}"
        if column in evaluations:
            traces.append(
                {
                    "x": evaluations["epoch"].tolist(),
                    "y": evaluations[column].tolist(),
                    "mode": "lines+markers",
                    "name": f"{member} (val)",
                    "line": {"color": MEMBER_COLORS[member]},
                }
            )
    return traces


def training_layout() -> Figure:
    """An empty two-panel figure: loss per step (left, axes x/y) and validation accuracy per
    epoch (right, axes x2/y2), what the live TrainingMonitor draws into."""
    from plotly.subplots import make_subplots

    fig = Figure(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.58, 0.42],
            horizontal_spacing=0.1,
            subplot_titles=("Training loss per sandwich member", "Validation accuracy (%)"),
        )
    )
    fig.update_layout(template="nasviz", height=360, legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=2)
    return fig


def accuracy_figure(evaluations: pd.DataFrame) -> Figure:
    """Validation accuracy of the largest and smallest subnets per evaluated epoch."""
    fig = Figure()
    for trace in accuracy_traces(evaluations):
        fig.add_scatter(**{**trace, "name": trace["name"].removesuffix(" (val)")})
    fig.update_layout(
        title="Validation accuracy (%)",
        xaxis_title="epoch",
        yaxis_title="accuracy (%)",
        template="nasviz",
        height=320,
        width=420,
    )
    return fig
