"""Evaluating one architecture, on whatever worker an executor picks.

:func:`evaluate` is the task a search submits to its executor. It is a module-level function
and the evaluators are plain picklable objects, so a Dask ``Client.get_executor()`` (worker
processes, other machines) can run it; the evaluated function must be importable there too.
It never raises: a failure comes back as an :class:`Outcome` with the error and traceback.

Supernet evaluations are CPU-bound torch work inside this process, so at most one per CPU core
computes at once (:data:`COMPUTE_SLOTS`); more workers keep more evaluations in flight, the
rest wait for a slot. More at once than cores only time-slices them (no faster) and crowds the
notebook kernel's threads off the cores. On 2 cores a 4-worker ElasticCNN search slowed a
trivial cell 1.6-1.9x before this cap and the idle scheduling class of background threads
(:func:`nasviz.runner.lower_thread_priority`), 1.27-1.38x with both (``python -m bench
widgets``), and evaluated no fewer archs per second.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from nasviz.errors import ConfigError
from nasviz.objectives import Objective
from nasviz.search._fidelity import Pruned, Reporter
from nasviz.space import Arch

__all__ = [
    "FunctionEvaluator",
    "Outcome",
    "SupernetEvaluator",
    "evaluate",
    "is_supernet",
    "takes_report",
]


def _cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: Supernet evaluations computing at once in this process (every search shares it).
COMPUTE_SLOTS = threading.BoundedSemaphore(_cpu_cores())


@dataclass(frozen=True)
class Outcome:
    """The result of one evaluation: ``values`` by objective name, or None with ``error``;
    ``pruned`` when early stopping ended it (then ``error`` says so and ``values`` is None)."""

    values: dict[str, float] | None
    error: str = ""
    traceback: str = ""
    duration: float = 0.0
    worker: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    pruned: bool = False
    model: Any = None  # the model a function returned, when the search keeps models


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def evaluate(evaluator: Callable[..., Any], arch: Arch, report: Reporter | None = None) -> Outcome:
    """Runs ``evaluator(arch)`` (``evaluator(arch, report)`` when given a reporter); NaN or
    infinite values and exceptions become a failed Outcome, :class:`Pruned` a pruned one."""
    t0 = time.perf_counter()
    try:
        values, extras, *model = evaluator(arch) if report is None else evaluator(arch, report)
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        if bad:
            raise ValueError(f"objective(s) {bad} came out NaN or infinite: {values}")
    except Pruned as exc:
        return Outcome(None, str(exc), "", time.perf_counter() - t0, _worker_name(), pruned=True)
    except Exception as exc:
        return Outcome(
            None,
            f"{type(exc).__name__}: {exc}",
            traceback.format_exc(),
            time.perf_counter() - t0,
            _worker_name(),
        )
    finally:
        if report is not None:
            report.end()
    if report is not None and report.stopped:  # the function swallowed Pruned: it still ends
        return Outcome(
            None, "stopped early", "", time.perf_counter() - t0, _worker_name(), pruned=True
        )
    model = model[0] if model else None
    return Outcome(values, "", "", time.perf_counter() - t0, _worker_name(), extras, model=model)


def takes_report(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` takes a second positional argument named ``report`` or without a
    default (``fn(arch, report)``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature
        return False
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) < 2:
        return False
    second = positional[1]
    return second.name == "report" or second.default is second.empty


def is_supernet(obj: Any) -> bool:
    """True for an object that follows the supernet protocol (space, subnet, export)."""
    return all(hasattr(obj, a) for a in ("space", "subnet", "export"))


class FunctionEvaluator:
    """Evaluates ``fn(arch)`` (or ``fn(arch, report)``, see :mod:`nasviz.search._fidelity`),
    which returns ``{objective name: value, ...}``, the model it built and trained, or
    ``(model, {name: value, ...})``.

    Objectives that measure a model (nasviz's ``accuracy``, ``params``, ``macs``, ``latency``,
    ...: ``Objective(..., needs_model=True)``) measure the returned model as
    ``objective(model)``. Other objectives that carry a function (``Objective(..., fn=f)``)
    are computed as ``f(None, arch)``; mark exact, inexpensive ones ``cheap=True`` and the
    predictor strategy computes them rather than predicting them. The rest are read from the
    dict. Values must be numbers (a string such as ``"1.0"`` fails the evaluation with a
    message). Extra JSON-scalar keys the function returns are kept as extra result columns.
    With ``keep``, the returned model goes back with the values (see
    :mod:`nasviz.search._keep`).
    """

    def __init__(self, fn: Callable[..., Any], objectives: list[Objective], keep: bool = False):
        self.fn = fn
        self.objectives = objectives
        self.keep = keep
        self.reports = takes_report(fn)

    def cheap(self, arch: Arch, names: Collection[str] | None = None) -> dict[str, float]:
        """Exact values of the cheap objectives (those in ``names``, default all) computable
        without evaluating ``arch``."""
        return {
            o.name: o(None, arch)
            for o in self.objectives
            if o.name in self.cheap_names() and (names is None or o.name in names)
        }

    def cheap_names(self) -> list[str]:
        """Cheap objectives of the arch alone (one that measures a model needs the model)."""
        return [o.name for o in self.objectives if o.cheap and o.fn and not o.needs_model]

    def start(self) -> None:
        """Nothing to prepare for a function (see :meth:`SupernetEvaluator.start`)."""

    def end(self) -> None:
        """Nothing to restore for a function."""

    def __call__(self, arch: Arch, report: Any = None) -> tuple[Any, ...]:
        model, out = _model_and_values(self.fn(arch) if report is None else self.fn(arch, report))
        values = {}
        for o in self.objectives:
            if o.fn is not None and o.needs_model:
                if model is None:
                    raise ConfigError(
                        f"objective {o.name!r} measures a model: the evaluation function must "
                        "return the model it built (or (model, {name: value}))"
                    )
                values[o.name] = o(model)
            elif o.fn is not None:
                values[o.name] = o(None, arch)
            elif o.name in out:
                values[o.name] = o.as_number(out[o.name])
            else:
                raise ConfigError(
                    f"the evaluation function returned no {o.name!r}; it returned keys {sorted(out)}"
                )
        extras = {
            k: v
            for k, v in out.items()
            if k not in values and isinstance(k, str) and isinstance(v, int | float | str | bool)
        }
        return (values, extras, model) if self.keep and model is not None else (values, extras)


def _model_and_values(out: Any) -> tuple[Any, Mapping[str, Any]]:
    """``(model or None, values)`` from what an evaluation function returned."""
    from torch import nn

    if isinstance(out, nn.Module):
        return out, {}
    if (
        isinstance(out, tuple)
        and len(out) == 2
        and isinstance(out[0], nn.Module)
        and isinstance(out[1], Mapping)
    ):
        return out
    if isinstance(out, Mapping):
        return None, out
    raise ConfigError(
        "the evaluation function must return a dict {objective name: value}, the model it built, "
        f"or (model, dict); got {type(out).__name__}"
    )


class SupernetEvaluator:
    """Evaluates every objective as ``objective(net, arch)`` on a supernet, from many threads.

    No lock: a supernet keeps the active subnet per thread (a context variable, see
    :mod:`nasviz.supernet._base`), its eval-mode forward writes no shared state, and BN
    re-calibration fills per-pass accumulators and a lock-protected per-arch cache. What is not
    thread-safe is the train/eval *mode*: the built-in objectives switch the net to eval and
    back, which races when the net is in train mode (one thread restores train mode while
    another is mid-forward, and train-mode batch norm updates shared running statistics).
    :meth:`start` therefore puts the net in eval mode once, before any evaluation runs, and the
    objectives' own switching becomes eval -> eval; :meth:`end` restores the previous mode.
    Nothing may train the net while a search evaluates it. Executors with worker processes
    (Dask) get a pickled copy, already in eval mode.

    With ``devices`` (e.g. ``["cuda:0", "cuda:1"]``), :meth:`start` makes one copy of the net
    on each device (the user's net stays where it is, unchanged) and each evaluation takes a
    free copy, so evaluations in flight run one per device; :meth:`end` drops the copies. CPU
    copies share the CPU slots (:data:`COMPUTE_SLOTS`); accelerator copies do not.
    """

    def __init__(self, net: Any, objectives: list[Objective], devices: list[Any] | None = None):
        missing = [o.name for o in objectives if o.fn is None]
        if missing:
            raise ConfigError(
                f"objective(s) {missing} have no function; with a supernet every objective measures "
                "it (accuracy(data), params(), macs(shape), latency(shape) or Objective(name, direction, fn))"
            )
        self.net = net
        self.objectives = objectives
        self.devices = list(devices) if devices else None
        self.reports = False  # objectives measure a subnet; nothing reports steps
        self._was_training: bool | None = None
        self._free: queue.SimpleQueue | None = None  # the per-device copies not in use

    def start(self) -> None:
        """Called by the search's run thread before a run's first evaluation."""
        if hasattr(self.net, "eval") and hasattr(self.net, "training"):
            if self._was_training is None:
                self._was_training = bool(self.net.training)
            self.net.eval()
        if self.devices:  # fresh copies every run: the net may have trained in between
            self._free = queue.SimpleQueue()
            for device in self.devices:
                self._free.put(copy.deepcopy(self.net).to(device).eval())

    def end(self) -> None:
        """Called by the run thread after a run's last evaluation finished."""
        self._free = None
        if self._was_training is not None:
            self.net.train(self._was_training)
            self._was_training = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_free": None}  # process executors get the net itself

    def cheap(self, arch: Arch, names: Collection[str] | None = None) -> dict[str, float]:
        return {
            o.name: o(self.net, arch)
            for o in self.objectives
            if o.cheap and (names is None or o.name in names)
        }

    def cheap_names(self) -> list[str]:
        return [o.name for o in self.objectives if o.cheap]

    def __call__(self, arch: Arch, report: Any = None) -> tuple[dict[str, float], dict[str, Any]]:
        free = self._free
        if free is None:
            with COMPUTE_SLOTS:  # one per CPU core at once (see the module's docstring)
                return {o.name: o(self.net, arch) for o in self.objectives}, {}
        net = free.get()  # a copy on a device no other evaluation is using
        try:
            slot = COMPUTE_SLOTS if _on_cpu(net) else contextlib.nullcontext()
            with slot:
                return {o.name: o(net, arch) for o in self.objectives}, {}
        finally:
            free.put(net)


def _on_cpu(net: Any) -> bool:
    first = next(iter(net.parameters()), None)
    return first is None or first.device.type == "cpu"
