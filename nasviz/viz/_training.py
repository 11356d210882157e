"""Supernet training figures: loss per sandwich member, validation accuracy per epoch."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["MEMBER_COLORS", "LossInfo", "accuracy_figure", "loss_figure", "loss_info"]

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


def loss_figure(info: LossInfo) -> go.Figure:
    fig = go.Figure()
    for member, steps in info.steps.items():
        fig.add_scatter(
            x=steps,
            y=info.losses[member],
            mode="lines",
            name=member,
            line={"color": MEMBER_COLORS.get(member, "#9467bd")},
        )
    fig.update_layout(
        title="Training loss per sandwich member",
        xaxis_title="step",
        yaxis_title="loss",
        template="plotly_white",
        height=320,
        width=560,
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
    )
    return fig


def accuracy_figure(evaluations: pd.DataFrame) -> go.Figure:
    """Validation accuracy of the largest and smallest subnets per evaluated epoch."""
    fig = go.Figure()
    if evaluations is not None and not evaluations.empty:
        for member in ("largest", "smallest"):
            column = f"val_{member}"
            if column in evaluations:
                fig.add_scatter(
                    x=evaluations["epoch"],
                    y=evaluations[column],
                    mode="lines+markers",
                    name=member,
                    line={"color": MEMBER_COLORS[member]},
                )
    fig.update_layout(
        title="Validation accuracy (%)",
        xaxis_title="epoch",
        yaxis_title="accuracy (%)",
        template="plotly_white",
        height=320,
        width=420,
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
    )
    return fig
