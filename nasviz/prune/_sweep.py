"""Pruning sweeps: accuracy vs sparsity for several methods, as a background run.

A :class:`Sweep` is a :class:`nasviz.runner.Run` over a :class:`SweepEngine` whose every step
prunes a fresh copy of the model with one (method, sparsity), optionally fine-tunes it,
evaluates it and measures it on the search's axes (``params`` and ``macs`` of the shrunk, dense
model, i.e. what inference really runs), then emits a ``"result"`` event with the new row.
"""

from __future__ import annotations

import copy
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from torch import nn

from nasviz.errors import ConfigError, NasvizWarning
from nasviz.objectives import count_macs, count_params
from nasviz.prune._channels import channels
from nasviz.prune._magnitude import magnitude
from nasviz.prune._masks import Masks, check_sparsity, prunable
from nasviz.prune._random import random
from nasviz.prune._shrink import shrink
from nasviz.runner import Engine, Event, Progress, Run

__all__ = ["METHODS", "Sweep", "SweepEngine", "sweep"]

Method = Callable[[nn.Module, float], Masks]

#: Method names a sweep (and the MaskViewer's picker) accepts; any ``fn(model, sparsity)``
#: returning Masks works too.
METHODS: dict[str, Method] = {
    "magnitude": lambda model, s: magnitude(model, s, scope="global"),
    "magnitude-layer": lambda model, s: magnitude(model, s, scope="layer"),
    "random": lambda model, s: random(model, s, "uniform"),
    "random-erk": lambda model, s: random(model, s, "erk"),
    "channels": lambda model, s: channels(model, s),
}

COLUMNS = [
    "method",
    "sparsity",
    "actual_sparsity",
    "params",
    "nonzero_params",
    "macs",
    "seconds",
    "error",
]


def _resolve(methods: Sequence[str | Method] | Mapping[str, Method]) -> dict[str, Method]:
    if isinstance(methods, Mapping):
        pairs = list(methods.items())
    elif isinstance(methods, str) or callable(methods):
        pairs = [
            (
                methods if isinstance(methods, str) else getattr(methods, "__name__", "custom"),
                methods,
            )
        ]
    else:
        pairs = [
            (m if isinstance(m, str) else getattr(m, "__name__", "custom"), m) for m in methods
        ]
    out = {}
    for name, fn in pairs:
        if isinstance(fn, str):
            if fn not in METHODS:
                raise ConfigError(
                    f"unknown pruning method {fn!r}; known: {sorted(METHODS)} or a callable"
                )
            fn = METHODS[fn]
        if not callable(fn):
            raise ConfigError(
                f"method {name!r} must be a name or a callable fn(model, sparsity) -> Masks"
            )
        out[name] = fn
    if not out:
        raise ConfigError("a sweep needs at least one method")
    return out


class SweepEngine(Engine):
    """One step = one (method, sparsity) point. Rows and masks are appended in the run's
    thread; :meth:`results` copies them under a lock, so any thread may read."""

    def __init__(
        self,
        model: nn.Module,
        methods: dict[str, Method],
        sparsities: list[float],
        evaluate: Callable[[nn.Module], Any],
        finetune: Callable[[nn.Module], Any] | None,
        input_shape: tuple[int, ...] | None,
    ):
        self.model = model
        self.points = [(m, s) for m in methods for s in sparsities]
        self.methods = methods
        self.evaluate, self.finetune, self.input_shape = evaluate, finetune, input_shape
        self.masks: dict[tuple[str, float], Masks] = {}
        self._rows: list[dict[str, Any]] = []
        self._failed = 0
        self._lock = threading.Lock()

    def finished(self) -> bool:
        return len(self._rows) >= len(self.points)

    def progress(self) -> Progress:
        with self._lock:
            return Progress(len(self._rows), len(self.points), self._failed, unit="point")

    def results(self) -> pd.DataFrame:
        """One row per evaluated point (method, sparsity, metrics, params, macs, ...)."""
        with self._lock:
            rows = list(self._rows)
        extra = sorted({k for r in rows for k in r} - set(COLUMNS))
        return pd.DataFrame(rows, columns=[*COLUMNS[:3], *extra, *COLUMNS[3:]])

    def step(self) -> Event:
        method, sparsity = self.points[len(self._rows)]
        t0 = time.perf_counter()
        row: dict[str, Any] = {"method": method, "sparsity": sparsity}
        try:
            pruned = copy.deepcopy(self.model)
            fn = self.methods[method]
            if fn is METHODS["channels"] and self.input_shape:  # trace on the user's input shape
                masks = channels(pruned, sparsity, example_input=self.input_shape)
            else:
                masks = fn(pruned, sparsity)
            masks.apply(pruned)
            if self.finetune is not None:
                self.finetune(pruned)
            row.update(self._measure(pruned, masks))
            self.masks[(method, sparsity)] = masks
            row["error"] = None
        except Exception as exc:  # a failing point is recorded, the sweep goes on
            row["error"] = "".join(traceback.format_exception_only(exc)).strip()
            row["traceback"] = traceback.format_exc()
            with self._lock:
                self._failed += 1
        row["seconds"] = time.perf_counter() - t0
        with self._lock:
            self._rows.append(row)
        return Event("result", dict(row))

    def _measure(self, pruned: nn.Module, masks: Masks) -> dict[str, Any]:
        value = self.evaluate(pruned)
        name = getattr(self.evaluate, "name", "accuracy")
        out = dict(value) if isinstance(value, Mapping) else {name: float(value)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NasvizWarning)  # unstructured: shrink removes nothing
            shape = self.input_shape
            small = shrink(pruned, masks, example_input=shape, check=False)
        out["actual_sparsity"] = masks.sparsity
        out["params"] = count_params(small)
        out["nonzero_params"] = sum(int((p != 0).sum()) for p in small.parameters())
        out["macs"] = count_macs(small, tuple(shape)) if shape else None
        return out


class Sweep(Run):
    """A background pruning sweep: ``start()``, ``stop()``, ``wait()``, ``status`` as every run,
    plus :attr:`results` (a DataFrame) and :attr:`masks` ((method, sparsity) -> Masks)."""

    engine: SweepEngine

    @property
    def results(self) -> pd.DataFrame:
        return self.engine.results()

    @property
    def masks(self) -> dict[tuple[str, float], Masks]:
        return dict(self.engine.masks)


def sweep(
    model: nn.Module,
    methods: Sequence[str | Method] | Mapping[str, Method] = ("magnitude", "random", "channels"),
    sparsities: Sequence[float] = (0.25, 0.5, 0.75),
    evaluate: Callable[[nn.Module], Any] | None = None,
    finetune: Callable[[nn.Module], Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Sweep:
    """A pruning sweep, ready to ``start()`` (background) or ``run()`` (here).

    Args:
        model: pruned on copies; never changed.
        methods: names from :data:`METHODS`, callables ``fn(model, sparsity) -> Masks``, or a
            name -> callable mapping.
        sparsities: each in [0, 1) (the ratio of channels for ``"channels"``).
        evaluate: ``evaluate(model) -> float | dict`` (a nasviz ``accuracy(data)`` objective
            works; its name becomes the column).
        finetune: ``finetune(model)`` trains the masked copy in place before evaluation.
        input_shape: input shape with batch, e.g. ``(1, 1, 8, 8)``: used to trace the model for
            shrinking and to count MACs.
    """
    if evaluate is None or not callable(evaluate):
        raise ConfigError(
            "sweep needs evaluate=fn(model) -> float or dict (e.g. nasviz.accuracy(data))"
        )
    if finetune is not None and not callable(finetune):
        raise ConfigError("finetune must be None or a callable finetune(model)")
    levels = [check_sparsity(s) for s in sparsities]
    if not levels:
        raise ConfigError("a sweep needs at least one sparsity")
    prunable(model)
    engine = SweepEngine(
        model,
        _resolve(methods),
        levels,
        evaluate,
        finetune,
        tuple(input_shape) if input_shape else None,
    )
    return Sweep(engine, name="nasviz-prune-sweep")
