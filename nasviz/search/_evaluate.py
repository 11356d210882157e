"""Evaluating one architecture, on whatever worker an executor picks.

:func:`evaluate` is the task a search submits to its executor. It is a module-level function
and the evaluators are plain picklable objects, so a Dask ``Client.get_executor()`` (worker
processes, other machines) can run it; the evaluated function must be importable there too.
It never raises: a failure comes back as an :class:`Outcome` with the error and traceback.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nasviz.errors import ConfigError
from nasviz.objectives import Objective
from nasviz.space import Arch

__all__ = ["FunctionEvaluator", "Outcome", "SupernetEvaluator", "evaluate", "is_supernet"]


@dataclass(frozen=True)
class Outcome:
    """The result of one evaluation: ``values`` by objective name, or None with ``error``."""

    values: dict[str, float] | None
    error: str = ""
    traceback: str = ""
    duration: float = 0.0
    worker: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def evaluate(
    evaluator: Callable[[Arch], tuple[dict[str, float], dict[str, Any]]], arch: Arch
) -> Outcome:
    """Runs ``evaluator(arch)``; NaN or infinite values and exceptions become a failed Outcome."""
    t0 = time.perf_counter()
    try:
        values, extras = evaluator(arch)
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        if bad:
            raise ValueError(f"objective(s) {bad} came out NaN or infinite: {values}")
    except Exception as exc:
        return Outcome(
            None,
            f"{type(exc).__name__}: {exc}",
            traceback.format_exc(),
            time.perf_counter() - t0,
            _worker_name(),
        )
    return Outcome(values, "", "", time.perf_counter() - t0, _worker_name(), extras)


def is_supernet(obj: Any) -> bool:
    """True for an object that follows the supernet protocol (space, subnet, export)."""
    return all(hasattr(obj, a) for a in ("space", "subnet", "export"))


class FunctionEvaluator:
    """Evaluates ``fn(arch) -> {objective name: value, ...}``.

    Objectives that carry their own function (``Objective(..., fn=f)``) are computed as
    ``f(None, arch)`` instead of being read from the dict; mark exact, inexpensive ones
    ``cheap=True`` and the predictor strategy computes them rather than predicting them.
    Extra JSON-scalar keys the function returns are kept as extra result columns.
    """

    def __init__(self, fn: Callable[[Arch], Mapping[str, Any]], objectives: list[Objective]):
        self.fn = fn
        self.objectives = objectives

    def cheap(self, arch: Arch) -> dict[str, float]:
        """Exact values of the cheap objectives computable without evaluating ``arch``."""
        return {
            o.name: float(o.fn(None, arch)) for o in self.objectives if o.cheap and o.fn is not None
        }

    def cheap_names(self) -> list[str]:
        return [o.name for o in self.objectives if o.cheap and o.fn is not None]

    def __call__(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        out = self.fn(arch)
        if not isinstance(out, Mapping):
            raise ConfigError(
                f"the evaluation function must return a dict {{objective name: value}}, got {type(out).__name__}"
            )
        values = {}
        for o in self.objectives:
            if o.fn is not None:
                values[o.name] = float(o.fn(None, arch))
            elif o.name in out:
                values[o.name] = float(out[o.name])
            else:
                raise ConfigError(
                    f"the evaluation function returned no {o.name!r}; it returned keys {sorted(out)}"
                )
        extras = {
            k: v
            for k, v in out.items()
            if k not in values and isinstance(k, str) and isinstance(v, int | float | str | bool)
        }
        return values, extras


class SupernetEvaluator:
    """Evaluates every objective as ``objective(net, arch)`` on a supernet.

    A supernet is one module whose active subnet is a setting, so evaluations that share one
    copy of it (threads of one process) run one at a time under a lock. Executors with worker
    processes (Dask) each get their own copy (the lock is not pickled) and run in parallel.
    """

    def __init__(self, net: Any, objectives: list[Objective]):
        missing = [o.name for o in objectives if o.fn is None]
        if missing:
            raise ConfigError(
                f"objective(s) {missing} have no function; with a supernet every objective measures "
                "it (accuracy(data), params(), macs(shape), latency(shape) or Objective(name, direction, fn))"
            )
        self.net = net
        self.objectives = objectives
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"net": self.net, "objectives": self.objectives}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def cheap(self, arch: Arch) -> dict[str, float]:
        with self._lock:
            return {o.name: o(self.net, arch) for o in self.objectives if o.cheap}

    def cheap_names(self) -> list[str]:
        return [o.name for o in self.objectives if o.cheap]

    def __call__(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        with self._lock:
            return {o.name: o(self.net, arch) for o in self.objectives}, {}
