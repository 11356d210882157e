"""TrainingMonitor: live loss curves of supernet training per sandwich member."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from nasviz.runner import Event
from nasviz.ui._controls import RunControls
from nasviz.ui._figure import FigureSlot, PlotWidget
from nasviz.ui._live import ChunkedSeries, LiveView, Throttle
from nasviz.viz._compat import keyword_only_after
from nasviz.viz._training import (
    MEMBER_COLORS,
    accuracy_traces,
    loss_info,
    loss_plot,
    training_layout,
)

__all__ = ["TrainingMonitor"]


class TrainingMonitor(LiveView):
    """Loss per sandwich member (largest, smallest, mean of the random ones) and validation
    accuracy per evaluated epoch in one live figure, with the same buttons and throttled path as
    the dashboard. When the run ends, the static figure in the notebook's output is refreshed
    (see :mod:`nasviz.ui._base`).

    Args:
        run: a training run (``nasviz.supernet.train_supernet(...)``), started or not.
        rate: maximum widget updates per second.
    """

    @keyword_only_after("rate")
    def __init__(self, run: Any, *, rate: float = 10.0):
        self.run = run
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._losses: dict[str, tuple[list[int], list[float]]] = {}  # member -> steps, losses
        self._evals_dirty = False
        self.throttle = Throttle(self._flush, rate)
        self.controls = RunControls(run, "training", on_change=self.throttle.notify)
        history = run.history
        if not history.empty:  # a resumed or finished run: draw what it has
            for step, group in history.groupby("step", sort=True):
                losses = dict(zip(group["member"], group["loss"], strict=True))
                self._pending.append({"step": int(step), "losses": losses})
        self._ingest()
        self.slot = FigureSlot(self._locked_new_figure, on_deaf=self._on_deaf)
        self._deaf = False
        self._synced = False
        self.widget = W.VBox([self.controls.widget, self.slot.box])
        self._unsubscribe = run.subscribe(self._on_event)
        self.throttle.flush_now()

    # ---- data in -----------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.kind == "loss":
            with self._lock:
                self._pending.append(event.data)
        elif event.kind == "eval":
            self._evals_dirty = True
        elif event.kind == "status" and event.data.ended:
            self._refresh_after_cell()  # the run ended: its final curves go into the output
        self.throttle.notify()

    def _ingest(self) -> None:
        """Queued losses -> per-member curves (random subnets averaged per step)."""
        with self._lock:
            new, self._pending = self._pending, []
        for item in new:
            losses = item["losses"]
            randoms = [v for k, v in losses.items() if k.startswith("random")]
            shown = {k: v for k, v in losses.items() if not k.startswith("random")}
            if randoms:
                shown["random (mean)"] = float(np.mean(randoms))
            for member, loss in shown.items():
                steps, values = self._losses.setdefault(member, ([], []))
                steps.append(int(item["step"]))
                values.append(float(loss))

    # ---- the figure ----------------------------------------------------------------------------
    def _new_figure(self) -> go.FigureWidget:
        """A figure widget holding every loss so far in its initial state."""
        draft = training_layout()
        self.series: dict[str, ChunkedSeries] = {}
        self._drawn: dict[str, int] = {}
        self._acc_traces: list[Any] = []
        self._draw(draft, evaluations=True)
        widget = PlotWidget(draft)
        index = {id(t): i for i, t in enumerate(draft.data)}
        for series in self.series.values():
            series.rebind(widget)
        self._acc_traces = [widget.data[index[id(t)]] for t in self._acc_traces]
        return widget

    def _draw(self, fig: go.Figure, evaluations: bool) -> None:
        with fig.batch_update():
            for member, (steps, values) in self._losses.items():
                if member not in self.series:
                    color = MEMBER_COLORS.get(member, "#9467bd")
                    self.series[member] = ChunkedSeries(
                        fig,
                        {"mode": "lines", "name": member, "line": {"color": color}},
                        continuous=True,
                    )
                start = self._drawn.get(member, 0)
                if start < len(steps):
                    self.series[member].append(steps[start:], values[start:])
                    self._drawn[member] = len(steps)
        if evaluations:
            if self._acc_traces:
                mine = {id(t) for t in self._acc_traces}
                fig.data = [t for t in fig.data if id(t) not in mine]
            self._acc_traces = []
            for trace in accuracy_traces(self.run.evaluations):
                fig.add_scatter(**trace, xaxis="x2", yaxis="y2")
                self._acc_traces.append(fig.data[-1])

    def _flush(self) -> None:
        self._ingest()
        evaluations, self._evals_dirty = self._evals_dirty, False
        if self.slot.created:
            if self._deaf:
                self._deaf = False
                self.slot.install(self._new_figure())
            else:
                self._draw(self.figure, evaluations)
        else:
            self._deaf = False
        status = self.run.status
        self.controls.draw(status)
        self.throttle.keep_ticking(status.active)
        ended = status.ended
        if ended and not self._synced:
            self.slot.sync_state()  # views made later (a page reload) show the final curves
            self.slot.finalize()
            self.refresh_static()  # front ends that follow background threads update at once
        self._synced = ended

    # ---- state for tests and static output ---------------------------------------------------
    @property
    def figure(self) -> go.FigureWidget:
        """The live figure: loss per member (left), validation accuracy (right)."""
        return self.slot.figure

    @property
    def steps_drawn(self) -> int:
        """Steps drawn for the largest subnet's curve."""
        self._materialize()
        series = self.series.get("largest")
        return 0 if series is None else series.count

    @property
    def accuracy_traces(self) -> list[Any]:
        """The validation-accuracy traces drawn (largest and smallest subnet)."""
        self._materialize()
        return list(self._acc_traces)

    def close(self) -> None:
        """Stops listening to the run and closes the figure widgets."""
        self._unsubscribe()
        self.throttle.close()
        self.slot.close()

    def static_figure(self) -> go.Figure:
        info = loss_info(self.run.history)
        steps = max((len(s) for s in info.steps.values()), default=0)
        return loss_plot(info, title=f"Training loss per sandwich member — {steps} steps")

    def __repr__(self) -> str:
        return f"TrainingMonitor({self.run.status})"
