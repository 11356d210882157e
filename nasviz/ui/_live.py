"""The one throttled path from background runs to the front end, and append-only plot series.

Runs report from their own thread; widgets must not push a message per event (a fast search
would flood Jupyter's IOPub channel, 1000 msg/s, and stall the kernel). :class:`Throttle`
coalesces notifications and calls the widget's ``flush`` at most ``rate`` times a second from
one flusher thread. :class:`ChunkedSeries` appends points to a plotly FigureWidget in bounded
chunks, so an update sends O(new points) bytes however many points are already drawn.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from nasviz.errors import NasvizWarning

__all__ = ["ChunkedSeries", "Throttle"]


class Throttle:
    """Calls ``flush()`` at most ``rate`` times a second after :meth:`notify` calls.

    Contract: ``notify`` may be called from any thread, often; ``flush`` runs in the flusher
    thread (or in the caller of :meth:`flush_now`), never twice at once. A flush that raises is
    reported as a warning; the throttle keeps going.
    """

    def __init__(self, flush: Callable[[], None], rate: float = 10.0):
        if rate <= 0:
            raise ValueError(f"rate must be > 0 updates per second, got {rate}")
        self._flush = flush
        self.interval = 1.0 / rate
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()  # one flush at a time
        self._thread: threading.Thread | None = None
        self._last = 0.0
        self.flushes = 0

    def notify(self) -> None:
        """Something changed; a flush will follow within ``1 / rate`` seconds."""
        if self._closed.is_set():
            return
        self._dirty.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="nasviz-ui-throttle", daemon=True
                    )
                    self._thread.start()

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
        with self._lock:
            try:
                self._flush()
            except Exception as exc:
                warnings.warn(f"widget update failed: {exc!r}", NasvizWarning, stacklevel=2)
            self.flushes += 1
            self._last = time.monotonic()

    def _loop(self) -> None:
        while True:
            self._dirty.wait()
            wait = self._last + self.interval - time.monotonic()
            if wait > 0 and not self._closed.is_set():
                time.sleep(wait)
            self._dirty.clear()
            self._run_flush()
            if self._closed.is_set():
                return


class ChunkedSeries:
    """Points of one logical series spread over traces of at most ``chunk`` points each.

    Appending extends only the last trace (or adds a new one), so the message a FigureWidget
    sends is bounded by ``chunk`` plus the new points. Per-point arrays (``customdata``,
    ``hovertext``, ``marker.color``) are kept in step with x and y.

    Contract: used from one thread at a time (the throttle's flush or the caller's).
    """

    def __init__(self, fig: Any, style: dict[str, Any], chunk: int = 256, continuous: bool = False):
        self.fig = fig
        self.style = style
        self.chunk = chunk
        self.continuous = continuous  # lines: repeat the previous chunk's last point
        self.traces: list[Any] = []
        self._fields: list[dict[str, list]] = []
        self.count = 0

    def clear(self) -> None:
        """Removes this series' traces from the figure."""
        if self.traces:
            keep = [t for t in self.fig.data if all(t is not mine for mine in self.traces)]
            self.fig.data = keep
        self.traces, self._fields, self.count = [], [], 0

    def append(self, x: Sequence[float], y: Sequence[float], **per_point: Sequence[Any]) -> None:
        """Adds points; ``per_point`` arrays: ``customdata``, ``hovertext``, ``color``."""
        x, y = list(x), list(y)
        for key, values in per_point.items():
            if len(values) != len(x):
                raise ValueError(f"{key} has {len(values)} values for {len(x)} points")
        start = 0
        while start < len(x):
            if not self.traces or len(self._fields[-1]["x"]) >= self.chunk:
                self._new_trace()
            fields = self._fields[-1]
            room = self.chunk - len(fields["x"])
            stop = start + room
            fields["x"].extend(x[start:stop])
            fields["y"].extend(y[start:stop])
            for key, values in per_point.items():
                fields.setdefault(key, []).extend(list(values)[start:stop])
            self._sync(self.traces[-1], fields)
            self.count += len(x[start:stop])
            start = stop

    def _new_trace(self) -> None:
        fields: dict[str, list] = {"x": [], "y": []}
        if self.continuous and self._fields and self._fields[-1]["x"]:
            prev = self._fields[-1]
            for key in prev:
                fields[key] = [prev[key][-1]]
        showlegend = not self.traces and self.style.get("showlegend", True)
        self.fig.add_scatter(**{**self.style, "showlegend": showlegend}, x=[], y=[])
        self.traces.append(self.fig.data[-1])
        self._fields.append(fields)

    @staticmethod
    def _sync(trace: Any, fields: dict[str, list]) -> None:
        trace.x = list(fields["x"])
        trace.y = list(fields["y"])
        if "customdata" in fields:
            trace.customdata = list(fields["customdata"])
        if "hovertext" in fields:
            trace.hovertext = list(fields["hovertext"])
        if "color" in fields:
            trace.marker.color = list(fields["color"])
