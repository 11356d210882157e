"""TrainingMonitor: live loss curves of supernet training per sandwich member."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nasviz.runner import Event
from nasviz.ui._base import View
from nasviz.ui._controls import RunControls
from nasviz.ui._live import ChunkedSeries, Throttle
from nasviz.viz._training import MEMBER_COLORS, accuracy_figure, loss_figure, loss_info

__all__ = ["TrainingMonitor"]


class TrainingMonitor(View):
    """Loss per sandwich member (largest, smallest, mean of the random ones) and validation
    accuracy per evaluated epoch, with the same buttons and throttled path as the dashboard.

    Args:
        run: a training run (``nasviz.supernet.train_supernet(...)``), started or not.
        rate: maximum widget updates per second.
    """

    def __init__(self, run: Any, rate: float = 10.0):
        self.run = run
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._evals_dirty = False
        self.controls = RunControls(run, "training", on_change=lambda: self.throttle.notify())
        self.loss_fig = go.FigureWidget(layout=loss_figure(loss_info(pd.DataFrame())).layout)
        self.acc_fig = go.FigureWidget(layout=accuracy_figure(pd.DataFrame()).layout)
        self.series: dict[str, ChunkedSeries] = {}
        self.widget = W.VBox([self.controls.widget, W.HBox([self.loss_fig, self.acc_fig])])
        history = run.history
        if not history.empty:  # a resumed or finished run: draw what it has
            for step, group in history.groupby("step", sort=True):
                self._pending.append(
                    {
                        "step": int(step),
                        "losses": dict(zip(group["member"], group["loss"], strict=True)),
                    }
                )
            self._evals_dirty = True
        self.throttle = Throttle(self._flush, rate)
        self._unsubscribe = run.subscribe(self._on_event)
        self.throttle.flush_now()

    def _on_event(self, event: Event) -> None:
        if event.kind == "loss":
            with self._lock:
                self._pending.append(event.data)
        elif event.kind == "eval":
            self._evals_dirty = True
        self.throttle.notify()

    def _flush(self) -> None:
        with self._lock:
            new, self._pending = self._pending, []
        by_member: dict[str, tuple[list[int], list[float]]] = {}
        for item in new:
            losses = item["losses"]
            randoms = [v for k, v in losses.items() if k.startswith("random")]
            shown = {k: v for k, v in losses.items() if not k.startswith("random")}
            if randoms:
                shown["random (mean)"] = float(np.mean(randoms))
            for member, loss in shown.items():
                xs, ys = by_member.setdefault(member, ([], []))
                xs.append(int(item["step"]))
                ys.append(float(loss))
        with self.loss_fig.batch_update():
            for member, (xs, ys) in by_member.items():
                if member not in self.series:
                    color = MEMBER_COLORS.get(member, "#9467bd")
                    self.series[member] = ChunkedSeries(
                        self.loss_fig,
                        {"mode": "lines", "name": member, "line": {"color": color}},
                        continuous=True,
                    )
                self.series[member].append(xs, ys)
        if self._evals_dirty:
            self._evals_dirty = False
            fig = accuracy_figure(self.run.evaluations)
            with self.acc_fig.batch_update():
                self.acc_fig.data = []
                self.acc_fig.add_traces(list(fig.data))
        self.controls.draw(self.run.status)

    @property
    def steps_drawn(self) -> int:
        """Steps drawn for the largest subnet's curve."""
        series = self.series.get("largest")
        return 0 if series is None else series.count

    def close(self) -> None:
        self._unsubscribe()
        self.throttle.close()

    def static_figure(self) -> go.Figure:
        return loss_figure(loss_info(self.run.history))

    def __repr__(self) -> str:
        return f"TrainingMonitor({self.run.status})"
