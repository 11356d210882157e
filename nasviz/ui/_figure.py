"""A view's plotly FigureWidget, replaced when its front end turns out to be deaf.

plotly's FigureWidget runs on anywidget, whose front end gives each new widget model 2 s to
load its ES module (anywidget 0.11: ``AbortSignal.timeout(2000)`` rejects the model's
``ready`` promise, "[anywidget] Failed to initialize model."). plotly's module is 5 MB and is
parsed again for every figure, so several figures created at once on a busy or slow machine
(a Binder instance, a notebook running a search) can miss that deadline. Such a model drops
every later message from the kernel, for good, while its view still renders the figure as it
was when the widget was created: a plot that silently never updates.

A rendered plotly view answers every trace edit the kernel sends with a trace-delta message
carrying the edit's id (and reports the last id it knows of when it first renders), so the
kernel can tell: when a view has rendered but still has not caught up with an edit ``grace``
seconds after it was sent (or after the view rendered, if later), the model is deaf.
:class:`FigureSlot` then asks its view for a new FigureWidget (a new model, which loads the
module again, alone this time) and puts it in the deaf one's place. Views build that widget
with their whole content in its *initial* state, so even a model that misses the deadline
again shows everything up to its creation. Where no front end renders the figure
(papermill, tests, a closed notebook) nothing ever answers and nothing is replaced.

The kernel handles messages from the front end only between cells: while a cell runs (say
``search.wait()``), answers wait in its queue, so that time does not count.

The same acknowledgements pace what the browser gets: while a rendered view has not yet caught
up with the last edit (and the kernel is idle, so that its answer would have arrived),
:meth:`FigureSlot.behind` is true and live views hold their next redraw back, so a slow browser
is sent as many redraws as it can draw, not a queue it lags seconds behind.

A replaced figure widget is not closed while its view lives: a slow browser may still be
answering its last edits, and a closed comm would have the kernel log "No such comm" (in
JupyterLab's log console) for each answer. Replacements are few (``max_replacements``), and
:meth:`FigureSlot.close` closes them all.

:class:`PlotWidget` is plotly's FigureWidget with one repair: plotly merges the defaults a view
reports back into its Python copy with ``if not value``, which raises "The truth value of an
array ... is ambiguous" for data held as numpy arrays (sent as binary buffers, reported back as
typed arrays). nasviz sends numpy arrays on purpose (an update costs O(new points)), so its
figure widgets use this class, and the kernel's log stays clean.
"""

from __future__ import annotations

import collections
import copy
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

__all__ = ["FigureSlot", "PlotWidget"]

#: The longest rest (seconds) a slow view gets between two redraws.
MAX_REST = 2.0


def _empty(value: Any) -> bool:
    """Whether a merged-away property left nothing behind (arrays are never "empty" here)."""
    return isinstance(value, dict | list | tuple) and len(value) == 0


def _is_dict_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) > 0 and isinstance(value[0], dict)


class PlotWidget(go.FigureWidget):
    """plotly's FigureWidget whose merge of view-reported defaults accepts numpy data (see the
    module docstring)."""

    @staticmethod
    def _remove_overlapping_props(input_data, delta_data, prop_path=()):
        """Removes from ``input_data`` (recursively) what ``delta_data`` also holds, except
        ``uid``; returns the removed paths. Data arrays (numpy) are left as they are."""
        removed: list[tuple] = []
        if isinstance(input_data, dict) and isinstance(delta_data, dict):
            for key, delta in delta_data.items():
                if key not in input_data or key == "uid":
                    continue
                value = input_data[key]
                if isinstance(delta, dict) or _is_dict_list(delta):
                    if isinstance(value, np.ndarray):  # typed data reported back: keep ours
                        continue
                    path = (*prop_path, key)
                    removed += PlotWidget._remove_overlapping_props(value, delta, path)
                    if _empty(value):
                        input_data.pop(key)
                        removed.append(path)
                else:
                    input_data.pop(key)
                    removed.append((*prop_path, key))
        elif isinstance(input_data, list) and isinstance(delta_data, list):
            for i, (value, delta) in enumerate(zip(input_data, delta_data, strict=False)):
                if value is not None and (isinstance(delta, dict) or _is_dict_list(delta)):
                    removed += PlotWidget._remove_overlapping_props(value, delta, (*prop_path, i))
        return removed


class FigureSlot:
    """Holds one FigureWidget in ``box`` and watches that its front end keeps up.

    The figure is made on first use (``make()``: when the view is displayed, when a front end
    first renders the box, or when code reads :attr:`figure`), so a view that is built but never
    shown costs the browser nothing: every FigureWidget that exists has a front-end model that
    loads plotly's module, shown or not.

    Args:
        make: builds a FigureWidget holding the view's full current content.
        on_deaf: called (from a timer thread) when the current figure's front end is deaf; it
            should build a fresh figure and pass it to :meth:`install` (the dashboard does it
            in its throttled flush). Default: install ``make()`` at once.
        grace: seconds a rendered view may take to acknowledge an edit.
        max_replacements: how many times at most a figure is replaced (one more after
            :meth:`finalize`).

    Contract: :meth:`install` and the figure's edits may come from any thread; acknowledgements
    arrive in the kernel's main thread.
    """

    def __init__(
        self,
        make: Callable[[], Any],
        on_deaf: Callable[[], None] | None = None,
        grace: float = 8.0,
        max_replacements: int = 3,
    ):
        self.box = W.Box(layout=W.Layout(width="100%"))
        # the front end counts the box's views: the figure is made when one first shows, also
        # when the box is shown inside someone else's layout rather than through its view
        self.box._view_count = 0
        self.box.observe(self._on_views, names="_view_count")
        self._make = make
        self._on_deaf = on_deaf or (lambda: self.install(self._make()))
        self.grace = grace
        self.final_grace = min(grace, 2.0)
        self.max_replacements = max_replacements
        self.replacements = 0
        self.retired: list[Any] = []  # replaced figure widgets, closed by close()
        self._final = False  # the content is final: one more replacement, a shorter grace
        self._lock = threading.Lock()
        self._make_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._figure: Any = None
        self._acked: int | None = None  # last edit id a view acknowledged; None: no view yet
        self._rendered_at = 0.0
        self._sent: collections.deque[tuple[int, float]] = collections.deque(maxlen=4096)
        self._drawing = 0.0  # seconds the view took to draw its last acknowledged edit
        self._last_ack = 0.0
        _follow_cells()

    def _on_views(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.figure  # noqa: B018 - made on first use

    @property
    def created(self) -> bool:
        """Whether the figure widget exists yet."""
        return self._figure is not None

    @property
    def figure(self) -> Any:
        """The current FigureWidget (made on first use)."""
        if self._figure is None:
            with self._make_lock:
                if self._figure is None:
                    self.install(self._make())
        return self._figure

    def install(self, figure: Any) -> None:
        """Shows ``figure`` in place of the previous one (kept open, see the module docstring)
        and starts watching it."""
        with self._lock:
            old, self._figure = self._figure, figure
            if old is not None:
                self.retired.append(old)
            self._acked, self._rendered_at = None, 0.0
            self._drawing, self._last_ack = 0.0, 0.0
            self._sent.clear()
        figure.observe(self._on_edit, names="_last_trace_edit_id")
        figure.observe(self._on_ack, names="_js2py_traceDeltas")
        self.box.children = (figure,)
        if old is not None:
            old.unobserve(self._on_edit, names="_last_trace_edit_id")
            old.unobserve(self._on_ack, names="_js2py_traceDeltas")

    def close(self) -> None:
        """Closes the figure widgets, the current one and those it replaced."""
        with self._lock:
            figures, self.retired = [*self.retired, self._figure], []
            if self._timer is not None:
                self._timer.cancel()
        for figure in figures:
            if figure is not None:
                figure.close()

    def sync_state(self) -> None:
        """Sends the figure's whole current content as its widget state, once.

        plotly keeps a figure's updates out of its widget state (``_widget_data``), so a view
        made later (a page reload, the same output shown again) would draw the figure as it was
        when the widget was created. Views call this when their content is final (a run ended).
        """
        if self._figure is not None:
            fig = self._figure
            fig._widget_layout = copy.deepcopy(fig._layout_obj._props)
            fig._widget_data = copy.deepcopy(fig._data)

    def finalize(self) -> None:
        """The view's content is final (its run ended): a front end still behind it after
        :attr:`final_grace` seconds gets a new figure even past ``max_replacements``, so that
        even one too slow to ever meet anywidget's deadline ends up showing the final figure
        (in the new widget's initial state)."""
        with self._lock:
            self._final = True
            pending = self._acked is not None and bool(self._sent)
        if pending:
            self._schedule(self.final_grace, sooner=True)

    @property
    def rendered(self) -> bool:
        """Whether a front-end view of the current figure has reported in."""
        return self._acked is not None

    def deaf(self) -> bool:
        """Whether a rendered view has left an edit unacknowledged too long."""
        with self._lock:
            return self._overdue() <= 0

    def behind(self) -> bool:
        """Whether the next edit should wait for the rendered view: it is still drawing an
        earlier one (an edit is unacknowledged while the kernel is idle, so its answer would have
        arrived), or it finished one less than its own drawing time ago (the browser gets at
        least as much rest as it spends drawing, so it stays responsive to the user)."""
        with self._lock:
            if self._acked is None or _cells.running:
                return False
            return bool(self._sent) or time.monotonic() - self._last_ack < self._drawing

    # ---- front-end traffic -------------------------------------------------------------------
    def _on_edit(self, change: dict[str, Any]) -> None:
        if change["owner"] is not self._figure:
            return
        with self._lock:
            self._sent.append((int(change["new"]), time.monotonic()))
            watched = self._acked is not None
        if watched:
            self._schedule(self._grace())

    def _on_ack(self, change: dict[str, Any]) -> None:
        message = change["new"]
        if not message or change["owner"] is not self._figure:
            return
        with self._lock:
            edit_id = int(message.get("trace_edit_id", 0))
            now = time.monotonic()
            if self._acked is None:
                self._rendered_at = now
            self._acked = max(self._acked or 0, edit_id)
            while self._sent and self._sent[0][0] <= self._acked:
                sent_at = self._sent.popleft()[1]
                self._drawing = min(now - sent_at, MAX_REST)  # how long the view took
            self._last_ack = now
            pending = bool(self._sent)
        if pending:
            self._schedule(self._grace())

    # ---- the watch -----------------------------------------------------------------------------
    def _grace(self) -> float:
        return self.final_grace if self._final else self.grace

    def _overdue(self) -> float:
        """Seconds until the oldest unacknowledged edit is overdue (<= 0: overdue); inf when
        nothing is pending or no view rendered. Call with the lock held."""
        if self._acked is None or not self._sent:
            return float("inf")
        running, ended = _cells.running, _cells.ended
        if running:  # answers wait in the kernel's queue until the cell ends
            return self._grace()
        since = max(self._sent[0][1], self._rendered_at, ended)
        return since + self._grace() - time.monotonic()

    def _schedule(self, delay: float, sooner: bool = False) -> None:
        """Checks in ``delay`` seconds; a check already due stays, unless ``sooner``."""
        with self._lock:
            if self._timer is not None:
                if not sooner:
                    return
                self._timer.cancel()
            self._timer = threading.Timer(max(delay, 0.01), self._check)
            self._timer.daemon = True
            self._timer.start()

    def _check(self) -> None:
        with self._lock:
            self._timer = None
            left = self._overdue()
            limit = self.max_replacements + (1 if self._final else 0)
            replace = left <= 0 and self.replacements < limit
            if replace:
                self.replacements += 1
                self._sent.clear()  # the replacement starts a new watch
        if replace:
            self._on_deaf()
        elif left != float("inf") and left > 0:
            self._schedule(left)


class _Cells:
    """Whether the kernel is running a cell, and when the last one ended (IPython events)."""

    def __init__(self) -> None:
        self.running = False
        self.ended = 0.0
        self.shells: list[Any] = []
        self.lock = threading.Lock()


_cells = _Cells()


def _follow_cells() -> None:
    """Registers IPython's ``pre_run_cell`` / ``post_run_cell`` hooks once per shell."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    with _cells.lock:
        if any(s is shell for s in _cells.shells):
            return
        _cells.shells.append(shell)
    shell.events.register("pre_run_cell", _cell_started)
    shell.events.register("post_run_cell", _cell_ended)


def _cell_started(*_args: Any) -> None:
    _cells.running = True


def _cell_ended(*_args: Any) -> None:
    _cells.running, _cells.ended = False, time.monotonic()
