"""The one background-run mechanism: a stepwise engine driven by a thin runner thread.

Searches, supernet training and pruning sweeps are all :class:`Engine` subclasses; a
:class:`Run` drives one in a background thread. ``start()`` returns at once, ``stop()``,
``pause()``, ``resume()`` and ``wait()`` control it, ``status`` and ``error`` can be read from
any thread, and every event the engine produces is delivered to listeners (widgets, tests,
progress bars). A run can also be driven synchronously with ``run()``.

Threads:
    * A background run's thread (and a search's evaluation workers) run at the lowest OS
      priority, :data:`BACKGROUND_NICE`, in Linux's idle scheduling class (``SCHED_IDLE``), so
      a kernel thread that wakes up (a cell, a comm message) takes a core at once instead of
      queueing behind them; :mod:`nasviz.search._evaluate` also caps how many supernet
      evaluations compute at once. The GIL switch interval is left alone: shortening it to
      1 ms measured no better cell latency during a search (``python -m bench widgets``
      history: 1.40-1.65x vs 1.23-1.55x with Python's 5 ms) and would change global state.
    * The engine's ``setup``, ``step`` and ``teardown`` are only ever called from one thread at a
      time (the runner thread, or the caller of ``run()``).
    * ``status``, ``error``, ``events`` and the control methods may be called from any thread.
    * Listeners are called in the thread that runs the engine; they must be quick and must not
      call ``wait()`` (widgets throttle and hand work to their own front-end path).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nasviz.errors import NasvizWarning, RunError

__all__ = [
    "BACKGROUND_NICE",
    "Engine",
    "Event",
    "Progress",
    "Run",
    "RunStatus",
    "lower_thread_priority",
]

#: States a run moves through. ``finished``: the engine has no more work; ``stopped``: a user
#: stopped it (``start()`` continues it); ``failed``: the engine raised (see ``Run.error``).
STATES = ("idle", "running", "paused", "stopping", "stopped", "finished", "failed")
_ACTIVE = ("running", "paused", "stopping")


#: OS niceness of background work (run threads, evaluation workers): the lowest priority, so
#: the kernel's threads get a CPU core first when cores are scarce. Niceness is CPU scheduling
#: only: it does not decide who holds the GIL.
BACKGROUND_NICE = 19


def lower_thread_priority(nice: int = BACKGROUND_NICE, idle: bool = True) -> bool:
    """Lowers the OS scheduling priority of the *calling thread* (Linux schedules threads one
    by one; elsewhere this is a no-op). Returns whether it took effect.

    Args:
        nice: the niceness to set.
        idle: also move the thread to the idle scheduling class (``SCHED_IDLE``), which a
            waking normal thread preempts at once. Niceness alone still lets it queue behind
            background threads of its own process. Threads the thread starts (torch's OpenMP
            workers) inherit both; a thread cannot leave the idle class again without
            privileges, so only call this in threads made for background work.
    """
    get_id = getattr(threading, "get_native_id", None)
    if get_id is None or not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, get_id(), nice)
    except OSError:
        return False
    if idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):  # niceness alone still applies
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread
    return True


@dataclass(frozen=True)
class Progress:
    """How far an engine is: ``done`` of ``total`` units (total None when open-ended)."""

    done: int = 0
    total: int | None = None
    failed: int = 0
    unit: str = "step"


@dataclass(frozen=True)
class Event:
    """Something a run reports. ``kind`` is ``"status"``, ``"error"`` or engine-specific
    (``"result"`` for a search, ``"loss"`` for training, ...); ``data`` is immutable or a copy."""

    kind: str
    data: Any = None
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RunStatus:
    """An immutable snapshot of a run's state and progress."""

    state: str
    done: int
    total: int | None
    failed: int
    elapsed: float
    unit: str = "step"
    message: str = ""

    @property
    def eta(self) -> float | None:
        """Seconds left at the average pace so far, None when unknown."""
        if self.total is None or self.done <= 0 or self.state not in _ACTIVE:
            return None
        return self.elapsed / self.done * max(self.total - self.done, 0)

    @property
    def active(self) -> bool:
        return self.state in _ACTIVE

    @property
    def ended(self) -> bool:
        """The run has started and is over (stopped, finished or failed)."""
        return not self.active and self.state != "idle"

    def __str__(self) -> str:
        total = "?" if self.total is None else str(self.total)
        text = f"{self.state}: {self.done}/{total} {self.unit}s, {_clock(self.elapsed)} elapsed"
        if self.eta is not None:
            text += f", ETA {_clock(self.eta)}"
        if self.failed:
            text += f", {self.failed} failed"
        if self.message:
            text += f" — {self.message}"
        return text


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Engine(ABC):
    """A unit of long work cut into steps (one evaluation, one training step, ...).

    Contract: ``setup`` is called before the first step of every start, ``step`` until
    ``finished()`` is True or the run is stopped, ``teardown(reason)`` always, once per start,
    with reason ``"finished"``, ``"stopped"`` or ``"failed"``. A step should take at most about
    a second or one evaluation, since stop and pause take effect between steps. An engine
    persists whatever it must not lose inside ``step`` (before returning its events).
    """

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepares a (re)start. Called in the run's thread."""

    @abstractmethod
    def step(self) -> Iterable[Event] | Event | None:
        """Does one unit of work and returns the events it produced."""

    @abstractmethod
    def finished(self) -> bool:
        """True when there is no more work."""

    def progress(self) -> Progress:
        """Current progress; read from any thread, so return a fresh immutable object."""
        return Progress()

    def teardown(self, reason: str) -> None:  # noqa: B027 - optional hook
        """Releases resources or checkpoints; ``reason`` says why the run ended."""


Listener = Callable[[Event], None]


class Run:
    """Drives an :class:`Engine` in a background thread.

    Example:
        >>> run = Run(engine)
        >>> run.start()            # returns at once
        >>> run.status.state
        'running'
        >>> run.wait()             # blocks until finished, stopped or failed
    """

    def __init__(self, engine: Engine, name: str = "nasviz-run"):
        self.engine = engine
        self.name = name
        self._lock = threading.RLock()
        self._state = "idle"
        self._message = ""
        self._error: BaseException | None = None
        self._traceback = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._ended = threading.Event()
        self._ended.set()
        self._listeners: list[Listener] = []
        self._elapsed = 0.0
        self._started_at: float | None = None

    # ---- observation ---------------------------------------------------------------------
    @property
    def status(self) -> RunStatus:
        """A snapshot of state and progress; safe from any thread."""
        progress = self.engine.progress()
        with self._lock:
            elapsed = self._elapsed
            if self._started_at is not None:
                elapsed += time.monotonic() - self._started_at
            return RunStatus(
                self._state,
                progress.done,
                progress.total,
                progress.failed,
                elapsed,
                progress.unit,
                self._message,
            )

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def error(self) -> BaseException | None:
        """The exception that failed the run, or None."""
        with self._lock:
            return self._error

    @property
    def traceback(self) -> str:
        """The formatted traceback of :attr:`error` ('' when none)."""
        with self._lock:
            return self._traceback

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Calls ``listener(event)`` for every event from now on; returns an unsubscribe function.

        A listener that raises is reported as a warning and does not stop the run.
        """
        if not callable(listener):
            raise TypeError(f"a listener must be callable, got {type(listener).__name__}")
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:  # a broken listener must not kill the run
                warnings.warn(
                    f"{self.name}: listener {listener!r} raised {exc!r} on a {event.kind!r} event",
                    NasvizWarning,
                    stacklevel=2,
                )

    def _set_state(self, state: str, message: str = "") -> None:
        with self._lock:
            if state == self._state and message == self._message:
                return
            self._state = state
            self._message = message
        self._emit(Event("status", self.status))

    # ---- control -------------------------------------------------------------------------
    def start(self) -> Run:
        """Starts (or continues a stopped run) in a background thread; returns at once."""
        with self._lock:
            self._check_startable()
            self._prepare()
            self._thread = threading.Thread(
                target=self._background_main, name=self.name, daemon=True
            )
            self._thread.start()
        return self

    def run(self) -> RunStatus:
        """Runs in the calling thread until finished, stopped (from another thread) or failed."""
        with self._lock:
            self._check_startable()
            self._prepare()
        self._main()
        return self.status

    def mark_finished(self, message: str) -> RunStatus:
        """Records without running that the engine has nothing left to do (state
        ``"finished"`` with ``message``), for an owner whose engine was finished before any
        start (a search whose storage already holds its budget)."""
        with self._lock:
            if self._state in _ACTIVE:
                raise RunError(f"{self.name} is {self._state}; it cannot be marked finished")
        self._set_state("finished", message)
        return self.status

    def _check_startable(self) -> None:
        if self._state in _ACTIVE:
            raise RunError(f"{self.name} is already {self._state}; stop() or wait() first")
        if self._state == "finished" or self.engine.finished():
            raise RunError(f"{self.name} has finished; there is nothing left to run")

    def _prepare(self) -> None:
        self._stop.clear()
        self._resume.set()
        self._ended.clear()
        self._error = None
        self._traceback = ""
        self._state = "running"
        self._message = ""
        self._started_at = time.monotonic()

    def stop(self, wait: bool = True, timeout: float | None = None) -> RunStatus:
        """Asks the run to stop after the current step; with ``wait`` blocks until it has."""
        with self._lock:
            if self._state not in _ACTIVE:
                return self.status
            self._stop.set()
            self._resume.set()
        self._set_state("stopping")
        if wait:
            self._join(timeout)
        return self.status

    def pause(self) -> RunStatus:
        """Holds the run after the current step until :meth:`resume`."""
        with self._lock:
            if self._state != "running":
                raise RunError(
                    f"cannot pause a run that is {self._state}; only a running run pauses"
                )
            self._resume.clear()
        self._set_state("paused")
        return self.status

    def resume(self) -> RunStatus:
        """Continues a paused run."""
        with self._lock:
            if self._state != "paused":
                raise RunError(
                    f"cannot resume a run that is {self._state}; only a paused run resumes"
                )
            self._resume.set()
        self._set_state("running")
        return self.status

    def wait(self, timeout: float | None = None, progress: bool = False) -> RunStatus:
        """Blocks until the run ends (or ``timeout`` seconds pass) and returns its status.

        Args:
            timeout: seconds to wait at most; None waits for the end.
            progress: show a terminal progress bar (tqdm) while waiting.
        """
        if threading.current_thread() is self._thread:
            raise RunError(
                "wait() was called from the run's own thread (a listener?); it would never return"
            )
        if progress:
            self._wait_with_bar(timeout)
        else:
            self._join(timeout)
        return self.status

    def _join(self, timeout: float | None) -> None:
        self._ended.wait(timeout)

    def _wait_with_bar(self, timeout: float | None) -> None:
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        status = self.status
        with tqdm(total=status.total, unit=status.unit, desc=self.name) as bar:
            while True:
                ended = self._ended.wait(0.2)
                status = self.status
                bar.n = status.done
                bar.set_postfix_str(
                    f"{status.state}" + (f", {status.failed} failed" if status.failed else "")
                )
                bar.refresh()
                if ended or (deadline is not None and time.monotonic() >= deadline):
                    break

    # ---- the loop ------------------------------------------------------------------------
    def _background_main(self) -> None:
        lower_thread_priority()
        self._main()

    def _main(self) -> None:
        reason = "finished"
        try:
            self._emit(Event("status", self.status))
            self.engine.setup()
            while not self.engine.finished():
                if not self._resume.is_set():
                    self._resume.wait()
                if self._stop.is_set():
                    reason = "stopped"
                    break
                events = self.engine.step()
                if isinstance(events, Event):
                    events = (events,)
                for event in events or ():
                    self._emit(event)
            else:
                reason = (
                    "stopped" if self._stop.is_set() and not self.engine.finished() else "finished"
                )
        except BaseException as exc:  # recorded, never swallowed: see .error and .traceback
            reason = "failed"
            with self._lock:
                self._error = exc
                self._traceback = traceback.format_exc()
        try:
            self.engine.teardown(reason)
        except BaseException as exc:
            if reason != "failed":
                reason = "failed"
                with self._lock:
                    self._error = exc
                    self._traceback = traceback.format_exc()
        with self._lock:
            if self._started_at is not None:
                self._elapsed += time.monotonic() - self._started_at
                self._started_at = None
        message = f"{type(self._error).__name__}: {self._error}" if reason == "failed" else ""
        if reason == "failed":
            self._emit(Event("error", {"error": self._error, "traceback": self._traceback}))
        self._set_state(reason, message)
        self._ended.set()
