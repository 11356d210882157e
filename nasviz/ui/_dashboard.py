"""SearchDashboard: controls, status, a live Pareto scatter and hypervolume curve for a Search."""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nasviz.errors import ConfigError
from nasviz.runner import Event
from nasviz.search import pareto_mask
from nasviz.ui._controls import RunControls
from nasviz.ui._figure import FigureSlot, PlotWidget
from nasviz.ui._hypervolume import LiveHypervolume
from nasviz.ui._live import ChunkedSeries, LiveView, Throttle
from nasviz.viz._compat import keyword_only_after
from nasviz.viz._dashboard import (
    HYPERVOLUME_AXES,
    HYPERVOLUME_TITLE,
    PARETO_AXES,
    PREDICTOR_AXES,
    PREDICTOR_NOTE,
    dashboard_figure,
    dashboard_layout,
    predicted_name,
)
from nasviz.viz._format import hover_text, si
from nasviz.viz._hypervolume import hover_template, hypervolume_title
from nasviz.viz._pareto import arch_columns, error_line, pareto_title, stopped_hover
from nasviz.viz._predictor import predictor_info, predictor_placeholder, predictor_traces
from nasviz.viz._style import (
    HYPERVOLUME_STYLE,
    failed_note,
    front_style,
    infeasible_style,
    point_style,
    stopped_style,
)

__all__ = ["SearchDashboard", "ended_early"]


def ended_early(status: Any) -> str:
    """Why a finished search stopped short of its budget ("" when it did not): every distinct
    arch the space holds (and the constraints allow) has been evaluated."""
    if status.state != "finished" or status.total is None or status.done >= status.total:
        return ""
    return (
        f"ended at {status.done} of {status.total}: every distinct subnet of the space has been "
        "evaluated (the budget is larger than the space)"
    )


def _on(axes: tuple[str, str]) -> dict[str, str]:
    return {"xaxis": axes[0], "yaxis": axes[1]}


class SearchDashboard(LiveView):
    """Start / Pause / Resume / Stop, status, errors, and one live figure: the Pareto scatter
    (axis and colour pickers for 3+ objectives; failed evaluations counted in a corner note,
    infeasible ones crossed; hovering any point shows its arch), the hypervolume curve with an editable
    reference point, and the predictor panel for the predictor strategy.

    Updates from the search thread go through one :class:`~nasviz.ui._live.Throttle` (at most
    ``rate`` per second, each in one ``batch_update``, sending only new points and what changed;
    while the search runs the status clock ticks once a second). A redraw waits while the
    browser is still drawing the previous one (:meth:`~nasviz.ui._figure.FigureSlot.behind`), so
    a slow browser never falls behind. When the search ends, the static figure in the notebook's
    output is refreshed (see :mod:`nasviz.ui._base`).

    The hypervolume curve is the share of a fixed reference box (0–1, raw value on hover); see
    :mod:`nasviz.ui._hypervolume` for when its reference point is chosen.

    Args:
        search: a :class:`nasviz.search.Search` (running, finished or loaded).
        rate: maximum widget updates per second.
    """

    @keyword_only_after("rate")
    def __init__(self, search: Any, *, rate: float = 10.0):
        self.search = search
        self.objectives = list(search.objectives)
        self._names = [o.name for o in self.objectives]
        self._dirs = [o.direction for o in self.objectives]
        self._predictor = getattr(getattr(search, "strategy", None), "name", "") == "predictor"
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = list(search.results.to_dict("records"))
        self._rows: list[dict[str, Any]] = []
        self._arch_cols: list[str] | None = None
        self._values = np.zeros((0, len(self._names)))
        self._trials = np.zeros(0, dtype=np.int64)
        self._hover: list[str] = []
        self._infeasible: list[dict[str, Any]] = []
        self._stopped: list[dict[str, Any]] = []  # trials early stopping ended
        self._errors: list[str] = []
        self.hv = LiveHypervolume(self.objectives)
        self._deaf = False  # the figure's front end is deaf: build a new one
        self._relayout = False  # a picker changed: lay the figure out again
        self._ended_state = ""
        self.throttle = Throttle(self._flush, rate)
        self._ingest()
        self._build()
        self._unsubscribe = search.subscribe(self._on_event)
        self.throttle.flush_now()

    # ---- layout --------------------------------------------------------------------------
    def _build(self) -> None:
        self.controls = RunControls(self.search, "search", on_change=self.throttle.notify)
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
        self.reference_inputs = [
            W.FloatText(
                description=n,
                layout=W.Layout(width="230px"),
                style={"description_width": "initial"},
            )
            for n in names
        ]
        self.reference_button = W.Button(description="Set reference")
        self.reference_button.on_click(lambda _b: self._reference_clicked())
        self.reference_message = W.HTML()
        self.slot = FigureSlot(self._locked_new_figure, on_deaf=self._on_deaf)
        pickers = (
            [W.HBox([self.x_picker, self.y_picker, self.color_picker])] if len(names) > 2 else []
        )
        self.widget = W.VBox(
            [
                self.controls.widget,
                *pickers,
                self.slot.box,
                W.HBox([*self.reference_inputs, self.reference_button, self.reference_message]),
            ]
        )

    @property
    def figure(self) -> go.FigureWidget:
        """The one live figure (scatter, hypervolume and predictor panel as subplots)."""
        return self.slot.figure

    def _axes(self) -> tuple[int, int, int | None]:
        color = self.color_picker.value
        return (
            self._names.index(self.x_picker.value),
            self._names.index(self.y_picker.value),
            None if color == "(none)" else self._names.index(color),
        )

    def _new_figure(self) -> go.FigureWidget:
        """A new figure widget that holds everything drawn so far in its *initial* state (so
        that even a front end that misses every later message shows it)."""
        draft = go.Figure()
        self._reset_figure(draft)
        self._draw(draft)
        widget = PlotWidget(draft)
        index = {id(t): i for i, t in enumerate(draft.data)}
        for series in (self.points, self.infeasible_series, self.stopped_series, self.hv_series):
            series.rebind(widget)
        self.front_trace = widget.data[index[id(self.front_trace)]]
        self.hv_tail = widget.data[index[id(self.hv_tail)]]
        self._predictor_traces = [widget.data[index[id(t)]] for t in self._predictor_traces]
        return widget

    def _reset_figure(self, fig: go.Figure) -> None:
        """Empties ``fig`` and lays it out for the current pickers; :meth:`_draw` then draws
        everything again."""
        ix, iy, ic = self._axes()
        color = None if ic is None else self._names[ic]
        directions = dict(zip(self._names, self._dirs, strict=True))
        layout = dashboard_layout(
            self._names[ix],
            self._names[iy],
            color,
            directions,
            self._predictor,
            predicted_name(self.search.cycles) if self._predictor else None,
        ).layout
        with fig.batch_update():
            fig.data = []
            fig.layout = layout
        on = _on(PARETO_AXES)
        self.points = ChunkedSeries(fig, {**point_style(color), **on})
        # the front's hover comes from the evaluated point under each of its markers (same
        # place, same text), so a change of the front sends coordinates and trials only
        fig.add_scatter(**{**front_style(self._dirs[ix]), "hoverinfo": "skip"}, **on, x=[], y=[])
        self.front_trace = fig.data[-1]
        self.infeasible_series = ChunkedSeries(fig, {**infeasible_style(), **on})
        self.stopped_series = ChunkedSeries(fig, {**stopped_style(), **on})
        fig.add_annotation(failed_note([]))
        # the curve is a staircase: only the evaluations where it rises are points of the
        # series; a two-point tail trace runs on to the latest evaluation
        hv_style = {
            **HYPERVOLUME_STYLE,
            "showlegend": False,
            "hovertemplate": hover_template(),
            **_on(HYPERVOLUME_AXES),
        }
        self.hv_series = ChunkedSeries(fig, hv_style, continuous=True)
        fig.add_scatter(**hv_style, x=[], y=[])
        self.hv_tail = fig.data[-1]
        self._hv_step: tuple[int, float] | None = None  # the last point of the series
        self._predictor_traces: list[Any] = []
        self._drawn = self._infeasible_drawn = self._stopped_drawn = self._hv_drawn = 0
        self._front_drawn: list[int] | None = None
        self._errors_drawn = -1
        self._cycles_dirty = self._predictor

    # ---- data in ---------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        """Run listener (search thread): queue and notify; drawing happens in the throttle."""
        if event.kind == "result":
            with self._lock:
                self._pending.append(dict(event.data))
        elif event.kind == "cycle":
            self._cycles_dirty = True
        elif event.kind == "status" and event.data.ended:
            self._refresh_after_cell()  # the run ended: its final front goes into the output
        self.throttle.notify()

    def _ingest(self) -> Any:
        """Takes the queued results and updates the data behind the figure; returns the
        search's status."""
        with self._lock:
            new, self._pending = self._pending, []
        ok = []
        for row in new:
            self._rows.append(row)
            if row.get("state") == "FAIL":
                self._errors.append(error_line(row))
                continue
            if row.get("state") == "PRUNED":  # drawn where it stopped, when it reported
                if all(pd.notna(row.get(n)) for n in self._names):
                    self._stopped.append(row)
                continue
            if row.get("state") != "COMPLETE" or not all(pd.notna(row.get(n)) for n in self._names):
                continue
            if self._arch_cols is None:
                self._arch_cols = arch_columns(pd.DataFrame([row]), self.objectives)
            (ok if bool(row.get("feasible", True)) else self._infeasible).append(row)
        if ok:
            vals = np.array([[r[n] for n in self._names] for r in ok], dtype=np.float64)
            self._values = np.vstack([self._values, vals])
            self._trials = np.concatenate([self._trials, [int(r["trial"]) for r in ok]])
            self._hover += [hover_text(r, self._arch_cols, self.objectives) for r in ok]
        status = self.search.status
        self.hv.update(self._values, len(new), self._frame, final=status.ended)
        return status

    # ---- controls --------------------------------------------------------------------------
    def press(self, button: str) -> None:
        """What a button click does (also callable from code and tests)."""
        self.controls.press(button)

    def set_reference(self, reference: list[float]) -> None:
        """Sets the hypervolume reference point (objective units) and recomputes the curve."""
        with self.throttle.lock:
            self.hv.fix(reference)
        self.throttle.flush_now()

    def _reference_clicked(self) -> None:
        try:
            self.set_reference([w.value for w in self.reference_inputs])
        except ConfigError as exc:
            self.reference_message.value = (
                f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            )
        else:
            self.reference_message.value = ""

    def redraw(self) -> None:
        """Full redraw (after an axis or colour change)."""
        self._relayout = True
        self.throttle.flush_now()

    # ---- flush (throttle thread) -------------------------------------------------------------
    def _flush(self) -> None:
        status = self._ingest()
        final = status.ended and status.state != self._ended_state
        if not self.slot.created:  # not displayed yet: it will be drawn whole when it is
            self._deaf = self._relayout = False
        elif self._deaf:
            self._deaf = self._relayout = False
            self.slot.install(self._new_figure())
        elif not final and not self._relayout and self.slot.behind():
            self._retry_later()  # the browser is still drawing the last update
        else:
            if self._relayout:
                self._relayout = False
                self._reset_figure(self.figure)
            self._draw(self.figure)
        early = ended_early(status)
        self.controls.draw(status, f" — {html.escape(early)}" if early else "")
        self.throttle.keep_ticking(status.active)
        if final:
            self._ended_state = status.state
            self.slot.sync_state()  # views made later (a page reload) show the final figure
            self.slot.finalize()  # a front end still behind gets the final figure anew
            self.refresh_static()  # front ends that follow background threads update at once
        elif not status.ended:
            self._ended_state = ""

    def _retry_later(self, delay: float = 0.25) -> None:
        timer = threading.Timer(delay, self.throttle.notify)
        timer.daemon = True
        timer.start()

    def _draw(self, fig: go.Figure) -> None:
        """Sends what changed since the last draw: new points, the front if it changed, the
        failed count, the new part of the hypervolume curve (all of it after the reference point
        moved), the titles; the predictor panel after a new cycle."""
        if self.hv.redraw or self._hv_drawn > len(self.hv.values):
            self.hv.redraw, self._hv_drawn, self._hv_step = False, 0, None
            self.hv_series.clear()  # outside batch_update: it batches by trace index
        with fig.batch_update():
            self._draw_points()
            self._draw_front()
            self._draw_failed(fig)
            self._draw_hv(fig)
            self._draw_title(fig)
        self._draw_predictor(fig)

    def _draw_points(self) -> None:
        ix, iy, ic = self._axes()
        start = self._drawn
        if start < len(self._values):
            extra = {"color": self._values[start:, ic]} if ic is not None else {}
            self.points.append(
                self._values[start:, ix],
                self._values[start:, iy],
                customdata=self._trials[start:],
                hovertext=self._hover[start:],
                **extra,
            )
            self._drawn = len(self._values)
        rows = self._infeasible[self._infeasible_drawn :]
        if rows:
            cols = self._arch_cols or []
            self.infeasible_series.append(
                [r[self._names[ix]] for r in rows],
                [r[self._names[iy]] for r in rows],
                customdata=[int(r["trial"]) for r in rows],
                hovertext=[hover_text(r, cols, self.objectives) + "<br>infeasible" for r in rows],
            )
            self._infeasible_drawn = len(self._infeasible)
        rows = self._stopped[self._stopped_drawn :]
        if rows:
            cols = self._arch_cols or arch_columns(pd.DataFrame(rows), self.objectives)
            self.stopped_series.append(
                [r[self._names[ix]] for r in rows],
                [r[self._names[iy]] for r in rows],
                customdata=[int(r["trial"]) for r in rows],
                hovertext=[stopped_hover(r, cols, self.objectives) for r in rows],
            )
            self._stopped_drawn = len(self._stopped)

    def _front(self) -> np.ndarray:
        if len(self._values) == 0:
            return np.zeros(0, dtype=int)
        return np.flatnonzero(pareto_mask(self._values, self._dirs))

    def _draw_front(self) -> None:
        """Sends the front only when it changed (most new points leave it alone)."""
        ix, iy, _ = self._axes()
        idx = self._front()
        idx = idx[np.argsort(self._values[idx, ix], kind="stable")]
        if self._front_drawn == idx.tolist():
            return
        self._front_drawn = idx.tolist()
        self.front_trace.x = self._values[idx, ix]
        self.front_trace.y = self._values[idx, iy]
        self.front_trace.customdata = self._trials[idx]

    def _draw_failed(self, fig: go.Figure) -> None:
        if self._errors_drawn == len(self._errors):
            return
        self._errors_drawn = len(self._errors)
        note = failed_note(self._errors)
        fig.update_annotations(
            selector={"name": "failed"},
            text=note["text"],
            visible=note["visible"],
            hovertext=note["hovertext"],
        )

    def _draw_title(self, fig: go.Figure) -> None:
        title = pareto_title(
            "Pareto front",
            len(self._values),
            len(self._front_drawn or ()),
            len(self._errors),
            len(self._infeasible),
            len(self._stopped),
        )
        if fig.layout.title.text != title:
            fig.layout.title.text = title

    def _draw_hv(self, fig: go.Figure) -> None:
        curve, raw = self.hv.values, self.hv.raw
        if self._hv_drawn < len(curve):
            steps = []
            last = None if self._hv_step is None else self._hv_step[1]
            for i in range(self._hv_drawn, len(curve)):
                if curve[i] != last:
                    steps.append((i + 1, curve[i], si(raw[i])))
                    last = curve[i]
            if steps:
                self.hv_series.append(
                    [x for x, _, _ in steps],
                    [y for _, y, _ in steps],
                    customdata=[r for _, _, r in steps],
                )
                self._hv_step = steps[-1][:2]
            self._hv_drawn = len(curve)
            x, y = self._hv_step
            self.hv_tail.x, self.hv_tail.y = [x, len(curve)], [y, y]
            self.hv_tail.customdata = [si(raw[x - 1]), si(raw[-1])]
        title = hypervolume_title(self.hv.reference, self._names)
        if self.hv.waiting:
            title += f" — {self.hv.waiting}"
        if _hv_title(fig) != title:
            fig.update_annotations(selector={"name": HYPERVOLUME_TITLE}, text=title)
        if self.hv.reference is not None and not self.hv.fixed:
            for box, value in zip(self.reference_inputs, self.hv.reference, strict=True):
                box.value = float(value)

    def _draw_predictor(self, fig: go.Figure) -> None:
        if not (self._predictor and self._cycles_dirty):
            return
        self._cycles_dirty = False
        if self._predictor_traces:
            mine = {id(t) for t in self._predictor_traces}
            fig.data = [t for t in fig.data if id(t) not in mine]
        self._predictor_traces = []
        info = predictor_info(self.search.cycles)
        for trace, col in predictor_traces(info):
            fig.add_scatter(**trace, **_on(PREDICTOR_AXES[col - 1]))
            self._predictor_traces.append(fig.data[-1])
        fig.update_annotations(
            selector={"name": PREDICTOR_NOTE}, visible=predictor_placeholder(info) is not None
        )

    def _frame(self) -> pd.DataFrame:
        if not self._rows:
            return pd.DataFrame(columns=["trial", "state", *self._names])
        return pd.DataFrame(self._rows)

    # ---- state for tests and static output ---------------------------------------------------
    @property
    def drawn_points(self) -> int:
        """Points drawn in the scatter (completed, feasible evaluations)."""
        self._materialize()
        return self.points.count

    @property
    def front_trials(self) -> list[int]:
        self._materialize()
        trials = self.front_trace.customdata
        return [] if trials is None else [int(t) for t in trials]

    @property
    def hypervolume_curve(self) -> list[float]:
        """The share of the reference box after each evaluation, read back from the drawn
        staircase (the raw values are ``dashboard.hv.raw``)."""
        self._materialize()
        steps = list(zip(self.hv_series.values("x"), self.hv_series.values("y"), strict=True))
        end = int(self.hv_tail.x[-1]) if self.hv_tail.x else 0
        curve: list[float] = []
        for k, (x, y) in enumerate(steps):
            until = steps[k + 1][0] if k + 1 < len(steps) else end + 1
            curve += [y] * (int(until) - int(x))
        return curve

    @property
    def hv_title(self) -> str:
        """The hypervolume subplot's title (it shows the reference point)."""
        return _hv_title(self.figure)

    @property
    def predictor_traces(self) -> list[Any]:
        """The predictor panel's traces (empty unless the strategy is ``"predictor"``)."""
        self._materialize()
        return list(self._predictor_traces)

    def close(self) -> None:
        """Stops listening to the search and closes the figure widgets."""
        self._unsubscribe()
        self.throttle.close()
        self.slot.close()

    def static_figure(self) -> go.Figure:
        ix, iy, ic = self._axes()
        return dashboard_figure(
            self._frame(),
            self.objectives,
            x=self._names[ix],
            y=self._names[iy],
            color=None if ic is None else self._names[ic],
            reference=self.hv.reference,
            ideal=self.hv.ideal,
            cycles=self.search.cycles if self._predictor else None,
            note=ended_early(self.search.status),
        )

    def __repr__(self) -> str:
        return f"SearchDashboard({self.search.status})"


def _hv_title(fig: go.Figure) -> str:
    for note in fig.layout.annotations:
        if note.name == HYPERVOLUME_TITLE:
            return note.text
    return ""
