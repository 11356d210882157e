"""The one throttled path from background runs to the front end, and append-only plot series.

Runs report from their own thread; widgets must not push a message per event (a fast search
would flood Jupyter's IOPub channel, 1000 msg/s, and stall the kernel). :class:`Throttle`
coalesces notifications and calls the widget's ``flush`` at most ``rate`` times a second from
one flusher thread (and, while a run is active, about once a ``tick`` so clocks move on while
a slow evaluation runs). :class:`ChunkedSeries` appends points to a plotly FigureWidget so that
an update sends O(new points) bytes however many points are already drawn.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nasviz.errors import NasvizWarning
from nasviz.ui._base import View

__all__ = ["ChunkedSeries", "Throttle"]


class Throttle:
    """Calls ``flush()`` at most ``rate`` times a second after :meth:`notify` calls.

    Contract: ``notify`` may be called from any thread, often; ``flush`` runs in the flusher
    thread (or in the caller of :meth:`flush_now`), never twice at once. A flush that raises is
    reported as a warning; the throttle keeps going. While :meth:`keep_ticking` is on, the
    flusher also flushes every ``tick`` seconds without a notification (a status clock).
    """

    def __init__(self, flush: Callable[[], None], rate: float = 10.0, tick: float = 1.0):
        if rate <= 0:
            raise ValueError(f"rate must be > 0 updates per second, got {rate}")
        if tick <= 0:
            raise ValueError(f"tick must be > 0 seconds, got {tick}")
        self._flush = flush
        self.interval = 1.0 / rate
        self.tick = tick
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._ticking = False
        self.lock = threading.RLock()  # one flush at a time; hold it to change what flush reads
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last = 0.0
        self.flushes = 0

    def notify(self) -> None:
        """Something changed; a flush will follow within ``1 / rate`` seconds."""
        if self._closed.is_set():
            return
        self._dirty.set()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="nasviz-ui-throttle", daemon=True
                    )
                    self._thread.start()

    def keep_ticking(self, on: bool) -> None:
        """Turns the periodic flush on (a run is active) or off."""
        if on != self._ticking:
            self._ticking = on
            if on:
                self.notify()  # wakes (or starts) the flusher so that it starts ticking

    def flush_now(self) -> None:
        """Flushes in the calling thread (initial draw, tests, the final state of a run)."""
        self._dirty.clear()
        self._run_flush()

    def close(self) -> None:
        """Stops the flusher thread (pending changes are flushed once more)."""
        self._closed.set()
        self._dirty.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run_flush(self) -> None:
        with self.lock:
            try:
                self._flush()
            except Exception as exc:
                warnings.warn(f"widget update failed: {exc!r}", NasvizWarning, stacklevel=2)
            self.flushes += 1
            self._last = time.monotonic()

    def _loop(self) -> None:
        while True:
            self._dirty.wait(self.tick if self._ticking else None)
            wait = self._last + self.interval - time.monotonic()
            if wait > 0 and not self._closed.is_set():
                time.sleep(wait)
            self._dirty.clear()
            self._run_flush()
            if self._closed.is_set():
                return


Fields = dict[str, list]


class ChunkedSeries:
    """The points of one logical series, spread over plot traces so that appending is cheap.

    New points go into a *fresh* trace of their own, so an update sends only them. Once
    ``slots`` fresh traces are in use, or they hold ``chunk`` points, their points are merged
    into one *sealed* trace (sent once, never changed again) and the fresh traces are emptied for
    reuse. Each point is sent about twice in all, and the figure holds about
    ``points / chunk + slots`` traces. Per-point arrays (``customdata``, ``hovertext``,
    ``color``) stay in step with x and y. With ``continuous`` (lines) every trace starts at the
    point before its own first one, so the line has no gaps.

    Contract: used from one thread at a time (the throttle's flush or the caller's).
    """

    def __init__(
        self,
        fig: Any,
        style: dict[str, Any],
        chunk: int = 256,
        slots: int = 16,
        continuous: bool = False,
    ):
        if chunk < 1 or slots < 1:
            raise ValueError(f"chunk and slots must be >= 1, got {chunk} and {slots}")
        self.fig = fig
        self.style = {"legendgroup": style.get("name"), **style}
        self.chunk = chunk
        self.slots = slots
        self.continuous = continuous
        self._sealed: list[tuple[Any, bool]] = []  # (trace, starts with a continuity point)
        self._fresh: list[Any] = []  # fresh traces, created on demand and reused
        self._fresh_fields: list[Fields] = []  # own points of the fresh traces in use
        self._fresh_prefix: Fields | None = None  # continuity point before the fresh points
        self._fresh_prefixed: list[bool] = []  # per fresh trace in use: starts with that point
        self._last: dict[str, Any] | None = None  # the last point appended, per field
        self.count = 0

    def rebind(self, fig: Any) -> None:
        """Moves the series onto ``fig``, a copy of its figure with the same traces in the same
        order (a FigureWidget made from the go.Figure it was drawn into)."""
        index = {id(t): i for i, t in enumerate(self.fig.data)}
        self._sealed = [(fig.data[index[id(t)]], p) for t, p in self._sealed]
        self._fresh = [fig.data[index[id(t)]] for t in self._fresh]
        self.fig = fig

    @property
    def traces(self) -> list[Any]:
        """Every trace of this series: sealed ones in order, then the fresh ones."""
        return [t for t, _ in self._sealed] + self._fresh

    def clear(self) -> None:
        """Removes this series' traces from the figure. Not inside ``batch_update``: plotly
        batches restyles by trace index, and removing traces shifts the indices."""
        mine = {id(t) for t in self.traces}
        if mine:
            self.fig.data = [t for t in self.fig.data if id(t) not in mine]
        self._sealed, self._fresh, self._fresh_fields, self._fresh_prefixed = [], [], [], []
        self._fresh_prefix, self._last, self.count = None, None, 0

    def append(self, x: Sequence[float], y: Sequence[float], **per_point: Sequence[Any]) -> None:
        """Adds points; ``per_point`` arrays: ``customdata``, ``hovertext``, ``color``."""
        fields: Fields = {"x": list(x), "y": list(y)}
        for key, values in per_point.items():
            fields[key] = list(values)
            if len(fields[key]) != len(fields["x"]):
                raise ValueError(f"{key} has {len(values)} values for {len(fields['x'])} points")
        n = len(fields["x"])
        if n == 0:
            return
        held = sum(len(f["x"]) for f in self._fresh_fields)
        if self._fresh_fields and (len(self._fresh_fields) >= self.slots or held + n > self.chunk):
            self._seal()
        if n > self.chunk:  # a big batch (a finished search drawn at once): sealed right away
            for start in range(0, n, self.chunk):
                part = {k: v[start : start + self.chunk] for k, v in fields.items()}
                self._add_sealed(part, self._continuity())
                self._remember(part)
            return
        prefix = self._continuity()
        slot = len(self._fresh_fields)
        if slot == len(self._fresh):
            self._fresh.append(self._new_trace())
        if slot == 0:
            self._fresh_prefix = prefix
        self._fresh_fields.append(fields)
        self._fresh_prefixed.append(prefix is not None)
        self._draw(self._fresh[slot], _join([prefix, fields]))
        self._remember(fields)

    def values(self, key: str = "y") -> list[Any]:
        """One field of every point in order, read back from the figure's traces."""
        out: list[Any] = []
        fresh = list(zip(self._fresh, self._fresh_prefixed, strict=False))
        for trace, prefixed in self._sealed + fresh:
            data = _field(trace, key)
            out.extend(data[1:] if prefixed else data)
        return out

    # ---- internals ---------------------------------------------------------------------------
    def _continuity(self) -> Fields | None:
        if not self.continuous or self._last is None:
            return None
        return {k: [v] for k, v in self._last.items()}

    def _remember(self, fields: Fields) -> None:
        self._last = {k: v[-1] for k, v in fields.items()}
        self.count += len(fields["x"])

    def _seal(self) -> None:
        """Moves the fresh traces' points into one new sealed trace and empties them."""
        self._add_sealed(_join(self._fresh_fields), self._fresh_prefix)
        empty = {k: [] for k in self._fresh_fields[0]}
        for trace in self._fresh[: len(self._fresh_fields)]:
            self._draw(trace, empty)
        self._fresh_fields, self._fresh_prefix, self._fresh_prefixed = [], None, []

    def _add_sealed(self, fields: Fields, prefix: Fields | None) -> None:
        trace = self._new_trace()
        self._draw(trace, _join([prefix, fields]))
        self._sealed.append((trace, prefix is not None))

    def _new_trace(self) -> Any:
        first = not self._sealed and not self._fresh
        showlegend = first and self.style.get("showlegend", True)
        self.fig.add_scatter(**{**self.style, "showlegend": showlegend}, x=[], y=[])
        return self.fig.data[-1]

    @staticmethod
    def _draw(trace: Any, fields: Fields) -> None:
        # numpy arrays: plotly validates them without a Python loop, and a FigureWidget sends
        # numeric ones as binary buffers
        trace.x = np.asarray(fields["x"])
        trace.y = np.asarray(fields["y"])
        if "customdata" in fields:
            trace.customdata = np.asarray(fields["customdata"])
        if "hovertext" in fields:
            trace.hovertext = np.asarray(fields["hovertext"], dtype=object)
        if "color" in fields:
            trace.marker.color = np.asarray(fields["color"])


def _join(parts: Sequence[Fields | None]) -> Fields:
    """Concatenates field dicts (None parts skipped)."""
    out: Fields = {}
    for part in parts:
        for key, values in (part or {}).items():
            out.setdefault(key, []).extend(values)
    return out


def _field(trace: Any, key: str) -> list[Any]:
    """One per-point field of a trace as a list of Python values."""
    values = trace.marker.color if key == "color" else getattr(trace, key)
    if values is None:
        return []
    return [v.item() if isinstance(v, np.generic) else v for v in values]


class LiveView(View):
    """A View whose one figure, ``self.slot`` (a :class:`~nasviz.ui._figure.FigureSlot`), is
    drawn by the flushes of ``self.throttle``: the search dashboard and the training monitor.

    Subclasses make ``self.slot = FigureSlot(self._locked_new_figure, on_deaf=self._on_deaf)``,
    implement :meth:`_new_figure`, and let a flush that finds :attr:`_deaf` install a new one.
    """

    slot: Any
    throttle: Throttle
    _deaf = False  # the figure's front end never caught up: the next flush builds a new one

    def _new_figure(self) -> Any:
        """A figure widget holding everything drawn so far in its *initial* state."""
        raise NotImplementedError

    def _materialize(self) -> None:
        self.slot.figure  # noqa: B018 - made when the view is first displayed

    def _locked_new_figure(self) -> Any:
        with self.throttle.lock:  # not while a flush draws
            return self._new_figure()

    def _prepare_static(self) -> None:
        self.throttle.flush_now()

    def _on_deaf(self) -> None:
        """The figure's front end never caught up (see :mod:`nasviz.ui._figure`): rebuild it."""
        self._deaf = True
        self.throttle.notify()
