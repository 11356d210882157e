"""SearchDashboard: controls, status, a live Pareto scatter and hypervolume curve for a Search."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nasviz.errors import ConfigError
from nasviz.runner import Event
from nasviz.search import default_reference, hypervolume, pareto_mask
from nasviz.ui._base import View
from nasviz.ui._controls import RunControls
from nasviz.ui._live import ChunkedSeries, Throttle
from nasviz.viz._pareto import (
    DOMINATED,
    FRONT,
    arch_columns,
    hover_text,
    hypervolume_figure,
    hypervolume_info,
    pareto_figure,
    pareto_info,
    predictor_figure,
    predictor_info,
)

__all__ = ["SearchDashboard"]


class SearchDashboard(View):
    """Start / Pause / Resume / Stop, status, errors, a live Pareto scatter (axis pickers for 3+
    objectives), the hypervolume curve with an editable reference point, and the predictor panel.

    Updates from the search thread go through one :class:`~nasviz.ui._live.Throttle` (at most
    ``rate`` per second, each in one ``batch_update``, sending only new points and the front).

    Args:
        search: a :class:`nasviz.search.Search` (running, finished or loaded).
        rate: maximum widget updates per second.
    """

    def __init__(self, search: Any, rate: float = 10.0):
        self.search = search
        self.objectives = list(search.objectives)
        self._names = [o.name for o in self.objectives]
        self._dirs = [o.direction for o in self.objectives]
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._rows: list[dict[str, Any]] = []
        self._by_trial: dict[int, dict[str, Any]] = {}
        self._arch_cols: list[str] | None = None
        self._values = np.zeros((0, len(self._names)))
        self._trials = np.zeros(0, dtype=np.int64)
        self._failed = 0
        self._hv: list[float] = []
        self._front_hv_points = np.zeros((0, len(self._names)))
        self._reference: np.ndarray | None = None
        self._reference_fixed = False
        self._cycles_dirty = False
        self._hv_redraw = False
        self._build()
        self._load_existing()
        self.throttle = Throttle(self._flush, rate)
        self._unsubscribe = search.subscribe(self._on_event)
        self.throttle.flush_now()

    # ---- layout --------------------------------------------------------------------------
    def _build(self) -> None:
        self.controls = RunControls(self.search, "search", on_change=lambda: self.throttle.notify())
        self.buttons = self.controls.buttons
        self.status_line = self.controls.status_line
        self.error_box = self.controls.error_box
        names = self._names
        self.x_picker = W.Dropdown(options=names, value=names[0], description="x")
        self.y_picker = W.Dropdown(options=names, value=names[1], description="y")
        self.color_picker = W.Dropdown(
            options=["(none)", *names],
            value=names[2] if len(names) > 2 else "(none)",
            description="colour",
        )
        for picker in (self.x_picker, self.y_picker, self.color_picker):
            picker.observe(lambda _c: self.redraw(), names="value")
        self.pareto = go.FigureWidget()
        self.hv_fig = go.FigureWidget(
            layout=hypervolume_figure(
                hypervolume_info(pd.DataFrame(columns=names), self.objectives, [0.0] * len(names))
            ).layout
        )
        self.hv_series = ChunkedSeries(
            self.hv_fig,
            {"mode": "lines", "name": "hypervolume", "line": {"color": FRONT}, "showlegend": False},
            continuous=True,
        )
        self._hv_drawn = 0
        self.reference_inputs = [
            W.FloatText(description=n, layout=W.Layout(width="200px")) for n in names
        ]
        self.reference_button = W.Button(description="Set reference")
        self.reference_button.on_click(
            lambda _b: self.set_reference([w.value for w in self.reference_inputs])
        )
        self.predictor_fig = go.FigureWidget() if self._is_predictor() else None
        pickers = (
            [W.HBox([self.x_picker, self.y_picker, self.color_picker])] if len(names) > 2 else []
        )
        panels = [
            self.controls.widget,
            *pickers,
            self.pareto,
            self.hv_fig,
            W.HBox([*self.reference_inputs, self.reference_button]),
        ]
        if self.predictor_fig is not None:
            panels.append(self.predictor_fig)
        self.widget = W.VBox(panels)
        self._reset_pareto()

    def _is_predictor(self) -> bool:
        return getattr(getattr(self.search, "strategy", None), "name", "") == "predictor"

    def _reset_pareto(self) -> None:
        x, y = self.x_picker.value, self.y_picker.value
        color = None if self.color_picker.value == "(none)" else self.color_picker.value
        self._axes = (
            self._names.index(x),
            self._names.index(y),
            None if color is None else self._names.index(color),
        )
        with self.pareto.batch_update():
            self.pareto.data = []
            empty = pareto_figure(
                pareto_info(
                    pd.DataFrame(columns=["trial", *self._names]), self.objectives, x, y, color
                )
            )
            self.pareto.layout = empty.layout
            if color is not None:
                self.pareto.layout.coloraxis = {
                    "colorscale": "Viridis",
                    "colorbar": {"title": color},
                }
            marker = {"color": DOMINATED, "opacity": 0.35, "size": 7}
            if color is not None:
                marker = {"coloraxis": "coloraxis", "opacity": 0.5, "size": 7}
            self.points = ChunkedSeries(
                self.pareto,
                {"mode": "markers", "name": "evaluated", "marker": marker, "hoverinfo": "text"},
            )
            self.pareto.add_scatter(
                x=[],
                y=[],
                mode="lines+markers",
                name="Pareto front",
                hoverinfo="text",
                line={"color": FRONT, "shape": "hv"},
                marker={"color": FRONT, "size": 10, "line": {"color": "white", "width": 1}},
            )
            self.front_trace = self.pareto.data[-1]
        self._drawn = 0

    # ---- data in ---------------------------------------------------------------------------
    def _load_existing(self) -> None:
        frame = self.search.results
        self._pending.extend(frame.to_dict("records"))

    def _on_event(self, event: Event) -> None:
        """Run listener (search thread): queue and notify; drawing happens in the throttle."""
        if event.kind == "result":
            with self._lock:
                self._pending.append(dict(event.data))
        elif event.kind == "cycle":
            self._cycles_dirty = True
        self.throttle.notify()

    # ---- controls --------------------------------------------------------------------------
    def press(self, button: str) -> None:
        """What a button click does (also callable from code and tests)."""
        self.controls.press(button)

    def set_reference(self, reference: list[float]) -> None:
        """Fixes the hypervolume reference point (objective units) and recomputes the curve."""
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != (len(self._names),) or not np.all(np.isfinite(ref)):
            raise ConfigError(
                f"the reference point needs {len(self._names)} finite values, got {reference}"
            )
        with self._lock:
            self._reference, self._reference_fixed = ref, True
        self._recompute_hv()
        self.throttle.flush_now()

    def redraw(self) -> None:
        """Full redraw (after an axis change)."""
        self._reset_pareto()
        self.throttle.flush_now()

    # ---- flush (throttle thread) -------------------------------------------------------------
    def _flush(self) -> None:
        with self._lock:
            new, self._pending = self._pending, []
        ok_rows = []
        for row in new:
            self._rows.append(row)
            if row.get("state") == "COMPLETE":
                self._by_trial[int(row["trial"])] = row
                if self._arch_cols is None:
                    self._arch_cols = arch_columns(pd.DataFrame([row]), self.objectives)
            ok = (
                row.get("state") == "COMPLETE"
                and bool(row.get("feasible", True))
                and all(pd.notna(row.get(n)) for n in self._names)
            )
            self._failed += row.get("state") == "FAIL"
            if ok:
                ok_rows.append(row)
        if ok_rows:
            vals = np.array([[r[n] for n in self._names] for r in ok_rows], dtype=np.float64)
            self._values = np.vstack([self._values, vals])
            self._trials = np.concatenate([self._trials, [int(r["trial"]) for r in ok_rows]])
        self._update_hv(len(new))
        status = self.search.status
        with self.pareto.batch_update(), self.hv_fig.batch_update():
            self._draw_points()
            self._draw_front()
            self._draw_hv()
            self._draw_status(status)
        if self._cycles_dirty and self.predictor_fig is not None:
            self._cycles_dirty = False
            fig = predictor_figure(predictor_info(self.search.cycles))
            with self.predictor_fig.batch_update():
                self.predictor_fig.data = []
                self.predictor_fig.add_traces(list(fig.data))
                self.predictor_fig.layout = fig.layout

    def _draw_points(self) -> None:
        start = self._drawn
        if start >= len(self._values):
            return
        ix, iy, ic = self._axes
        trials = self._trials[start:]
        cols = self._arch_cols or []
        hover = [
            hover_text(pd.Series(self._by_trial[int(t)]), cols, self.objectives) for t in trials
        ]
        extra = {"color": self._values[start:, ic].tolist()} if ic is not None else {}
        self.points.append(
            self._values[start:, ix].tolist(),
            self._values[start:, iy].tolist(),
            customdata=trials.tolist(),
            hovertext=hover,
            **extra,
        )
        self._drawn = len(self._values)

    def _front(self) -> np.ndarray:
        if len(self._values) == 0:
            return np.zeros(0, dtype=int)
        return np.flatnonzero(pareto_mask(self._values, self._dirs))

    def _draw_front(self) -> None:
        ix, iy, _ = self._axes
        idx = self._front()
        idx = idx[np.argsort(self._values[idx, ix], kind="stable")]
        self.front_trace.x = self._values[idx, ix].tolist()
        self.front_trace.y = self._values[idx, iy].tolist()
        self.front_trace.customdata = self._trials[idx].tolist()
        self.front_trace.line.shape = "hv" if self._dirs[ix] == "minimize" else "vh"
        failed = f", {self._failed} failed" if self._failed else ""
        title = f"Pareto front — {len(self._values)} evaluated, {len(idx)} on the front{failed}"
        if self.pareto.layout.title.text != title:
            self.pareto.layout.title.text = title

    def _update_hv(self, n_new: int) -> None:
        """Extends the hypervolume curve by ``n_new`` evaluations (failures count as evaluations)."""
        if len(self._values) == 0:
            self._hv.extend([0.0] * n_new)
            return
        if not self._reference_fixed:
            ref = default_reference(self._values, self._dirs)
            signs = np.array([1.0 if d == "minimize" else -1.0 for d in self._dirs])
            if self._reference is None or np.any(ref * signs > self._reference * signs):
                self._reference = ref  # a point fell outside: the whole curve changes
                self._recompute_hv()
                return
        front = self._values[self._front()]
        current = hypervolume(front, self._dirs, self._reference)
        self._hv.extend([current] * n_new)

    def _recompute_hv(self) -> None:
        frame = pd.DataFrame(self._rows) if self._rows else pd.DataFrame(columns=self._names)
        info = hypervolume_info(frame, self.objectives, self._reference)
        self._hv = info.hypervolume.tolist()
        self._hv_redraw = True

    def _draw_hv(self) -> None:
        if self._hv_redraw:
            self.hv_series.clear()
            self._hv_drawn, self._hv_redraw = 0, False
        start = self._hv_drawn
        if start < len(self._hv):
            self.hv_series.append(range(start + 1, len(self._hv) + 1), self._hv[start:])
            self._hv_drawn = len(self._hv)
        if self._reference is not None:
            ref = ", ".join(f"{v:.4g}" for v in self._reference)
            self.hv_fig.layout.title.text = f"Hypervolume vs evaluations (reference {ref})"
            if not self._reference_fixed:
                for box, value in zip(self.reference_inputs, self._reference, strict=True):
                    box.value = float(value)

    def _draw_status(self, status: Any) -> None:
        extra = f" · {self._failed} failed evaluation(s)" if self._failed else ""
        self.controls.draw(status, extra)

    # ---- state for tests and static output ---------------------------------------------------
    @property
    def drawn_points(self) -> int:
        """Points drawn in the scatter (completed, feasible evaluations)."""
        return self.points.count

    @property
    def front_trials(self) -> list[int]:
        return list(self.front_trace.customdata or [])

    @property
    def hypervolume_curve(self) -> list[float]:
        """The curve as drawn (read back from the figure's traces)."""
        ys: list[float] = []
        for i, trace in enumerate(self.hv_series.traces):
            ys.extend(list(trace.y or ())[1 if i else 0 :])  # chunks after the first repeat a point
        return ys

    def close(self) -> None:
        """Stops listening to the search."""
        self._unsubscribe()
        self.throttle.close()

    def static_figure(self) -> go.Figure:
        frame = (
            pd.DataFrame(self._rows)
            if self._rows
            else pd.DataFrame(columns=["trial", *self._names])
        )
        color = None if self.color_picker.value == "(none)" else self.color_picker.value
        return pareto_figure(
            pareto_info(frame, self.objectives, self.x_picker.value, self.y_picker.value, color)
        )

    def __repr__(self) -> str:
        return f"SearchDashboard({self.search.status})"
