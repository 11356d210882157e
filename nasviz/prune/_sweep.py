"""Pruning sweeps: the search's objectives vs sparsity for several methods, as a background run.

A :class:`Sweep` is a :class:`nasviz.runner.Run` over a :class:`SweepEngine` whose every step
prunes a fresh copy of the model with one (method, sparsity), optionally fine-tunes the masked
copy (a function of yours, or the training layer: ``finetune="distill"`` recovers it from the
unpruned model by distillation, ``"train"`` fine-tunes it on the labels), shrinks it (:func:`nasviz.prune.shrink`: what dense inference really runs; for
unstructured masks it is the same size) and measures the shrunk model with the given objectives,
the same :class:`~nasviz.objectives.Objective` instances a :class:`~nasviz.search.Search` uses,
so each row carries the same columns as a search's results and a pruned variant can sit on the
same Pareto front as searched subnets. Then it emits a ``"result"`` event with the new row.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from torch import nn

from nasviz.errors import ConfigError, MaskError, check_int
from nasviz.objectives import Objective, count_params
from nasviz.prune._channels import channels, layer_weights
from nasviz.prune._magnitude import magnitude
from nasviz.prune._masks import Masks, check_sparsity, copy_model
from nasviz.prune._random import random
from nasviz.prune._shrink import shrink_report
from nasviz.runner import Engine, Event, Progress, Run

__all__ = ["METHODS", "Sweep", "SweepEngine", "sweep"]

Method = Callable[[nn.Module, float], Masks]
Evaluation = Objective | Callable[[nn.Module], Any]

#: Method names a sweep (and the MaskViewer's picker) accepts; any ``fn(model, sparsity)``
#: returning Masks works too.
METHODS: dict[str, Method] = {
    "magnitude": lambda model, s: magnitude(model, s, scope="global"),
    "magnitude-layer": lambda model, s: magnitude(model, s, scope="layer"),
    "random": lambda model, s: random(model, s, "uniform"),
    "random-erk": lambda model, s: random(model, s, "erk"),
    "channels": lambda model, s: channels(model, s),
}

#: ``finetune=`` names: how the training layer fine-tunes each masked copy.
FINETUNES = ("distill", "train")

#: Columns before the objectives' and after them (``params`` joins the latter when no objective
#: is named so).
LEADING = ["trial", "state", "method", "sparsity", "weight_sparsity"]
TRAILING = ["nonzero_params", "feasible", "error", "traceback", "duration"]


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


def _evaluations(spec: Any) -> list[Evaluation]:
    """The objectives as a list (a single Objective or callable is one evaluation)."""
    items = [spec] if isinstance(spec, Objective) or callable(spec) else spec
    if items is None or isinstance(items, str) or not isinstance(items, Sequence) or not items:
        raise ConfigError(
            "sweep needs evaluate, the objectives to measure: a list of nasviz Objectives such as a Search's "
            "[accuracy(data), params(), macs(shape), latency(shape)], or one callable "
            f"evaluate(model) -> float | dict; got {spec!r}"
        )
    for item in items:
        if isinstance(item, Objective) and item.fn is None:
            raise ConfigError(
                f"objective {item.name!r} has no function to measure a pruned model with"
            )
        if not callable(item):
            raise ConfigError(f"an objective must be an Objective or a callable, got {item!r}")
    names = [_name(i) for i in items]
    if len(set(names)) != len(names):
        raise ConfigError(f"objective names must be unique, got {names}")
    return list(items)


def _name(evaluation: Evaluation) -> str:
    name = getattr(evaluation, "name", None) or getattr(evaluation, "__name__", "")
    return name if name and name != "<lambda>" else "score"


class SweepEngine(Engine):
    """One step = one (method, sparsity) point. Rows and masks are appended in the run's
    thread; :meth:`results` copies them under a lock, so any thread may read."""

    def __init__(
        self,
        model: nn.Module,
        methods: dict[str, Method],
        sparsities: list[float],
        evaluations: list[Evaluation],
        finetune: Callable[[nn.Module], Any] | str | None,
        input_shape: tuple[int, ...] | None,
        finetune_data: Any = None,
        finetune_options: Mapping[str, Any] | None = None,
    ):
        self.model = model
        self.points = [(m, s) for m in methods for s in sparsities]
        self.methods = methods
        self.evaluations, self.finetune, self.input_shape = evaluations, finetune, input_shape
        self.finetune_data = finetune_data
        self.finetune_options = dict(finetune_options or {})
        self.weights = set(layer_weights(model))  # names the weight_sparsity column counts
        self.masks: dict[tuple[str, float], Masks] = {}
        self._rows: list[dict[str, Any]] = []
        self._failed = 0
        self._lock = threading.Lock()

    @property
    def objectives(self) -> list[Objective]:
        """The Objective instances among the evaluations (their names are result columns)."""
        return [e for e in self.evaluations if isinstance(e, Objective)]

    def finished(self) -> bool:
        return len(self._rows) >= len(self.points)

    def progress(self) -> Progress:
        with self._lock:
            return Progress(len(self._rows), len(self.points), self._failed, unit="point")

    def results(self) -> pd.DataFrame:
        """One row per evaluated point; see :func:`sweep` for the columns."""
        with self._lock:
            rows = list(self._rows)
        named = [  # a callable returning a dict names its columns by the dict's keys
            _name(e)
            for e in self.evaluations
            if isinstance(e, Objective) or any(_name(e) in r for r in rows)
        ]
        if "params" not in named:
            named.append("params")
        fixed = set(LEADING) | set(TRAILING) | set(named)
        extra = sorted({k for r in rows for k in r} - fixed)
        return pd.DataFrame(rows, columns=[*LEADING, *named, *extra, *TRAILING])

    def step(self) -> Event:
        index = len(self._rows)
        method, sparsity = self.points[index]
        t0 = time.perf_counter()
        # trial numbers count down from -1, so they never collide with a Search's (0, 1, ...)
        # when the two tables are concatenated onto one Pareto front
        row: dict[str, Any] = {"trial": -1 - index, "method": method, "sparsity": sparsity}
        try:
            pruned = copy_model(self.model)
            fn = self.methods[method]
            if fn is METHODS["channels"] and self.input_shape:  # trace on the user's input shape
                masks = channels(pruned, sparsity, example_input=self.input_shape)
            else:
                masks = fn(pruned, sparsity)
            masks.apply(pruned)
            if isinstance(self.finetune, str):
                row.update(self._train(pruned))
            elif self.finetune is not None:
                self.finetune(pruned)
            row.update(self._measure(pruned, masks))
            self.masks[(method, sparsity)] = masks
            row.update(state="COMPLETE", feasible=True, error="", traceback="")
        except Exception as exc:  # a failing point is recorded, the sweep goes on
            for o in self.objectives:
                row[o.name] = math.nan
            row.update(
                state="FAIL",
                feasible=False,
                error="".join(traceback.format_exception_only(exc)).strip(),
                traceback=traceback.format_exc(),
            )
            with self._lock:
                self._failed += 1
        row["duration"] = time.perf_counter() - t0
        with self._lock:
            self._rows.append(row)
        return Event("result", dict(row))

    def _train(self, pruned: nn.Module) -> dict[str, Any]:
        """Fine-tunes the masked copy with the training layer (masks stay applied, so pruned
        weights stay zero); returns its last loss. A run that does not finish fails the point."""
        from nasviz.training import recover, train

        if self.finetune == "distill":
            run = recover(pruned, self.model, self.finetune_data, **self.finetune_options)
        else:
            run = train(pruned, self.finetune_data, **self.finetune_options)
        status = run.run()
        if status.state != "finished":
            raise RuntimeError(f"finetune={self.finetune!r} ended {status.state}: {run.error}")
        history = run.history
        last = (
            history[history["member"] == "total"] if "total" in set(history["member"]) else history
        )
        return {"finetune_loss": float(last["loss"].iloc[-1])} if len(last) else {}

    def _measure(self, pruned: nn.Module, masks: Masks) -> dict[str, Any]:
        """Objectives of the shrunk model, the fraction of weights removed, the nonzeros."""
        small, report = shrink_report(pruned, masks, self.input_shape)  # checked, as shrink is
        if report.mismatch:  # never measure a model that computes something else
            raise MaskError(
                f"the shrunk model's outputs differ from the masked model's ({report.mismatch}); this "
                "point's figures would describe another model"
            )
        out: dict[str, Any] = {}
        for evaluation in self.evaluations:
            value = evaluation(small)
            if isinstance(value, Mapping) and not isinstance(evaluation, Objective):
                out.update(value)
            else:
                out[_name(evaluation)] = float(value)
        counted = [n for n in masks if n in self.weights]
        total = sum(masks[n].numel() for n in counted)
        out["weight_sparsity"] = 1.0 - sum(masks.kept_in(n) for n in counted) / max(total, 1)
        out.setdefault("params", count_params(small))
        out["nonzero_params"] = sum(int((p != 0).sum()) for p in small.parameters())
        return out


class Sweep(Run):
    """A background pruning sweep: ``start()``, ``stop()``, ``wait()``, ``status`` as every run,
    plus :attr:`results` (a DataFrame), :attr:`masks` ((method, sparsity) -> Masks) and
    :attr:`objectives` (for :func:`nasviz.viz.pareto_info` on the results)."""

    engine: SweepEngine

    @property
    def results(self) -> pd.DataFrame:
        return self.engine.results()

    @property
    def masks(self) -> dict[tuple[str, float], Masks]:
        return dict(self.engine.masks)

    @property
    def objectives(self) -> list[Objective]:
        return self.engine.objectives


def sweep(
    model: nn.Module,
    methods: Sequence[str | Method] | Mapping[str, Method] = ("magnitude", "random", "channels"),
    sparsities: Sequence[float] = (0.25, 0.5, 0.75),
    evaluate: Sequence[Evaluation] | Evaluation | None = None,
    finetune: Callable[[nn.Module], Any] | str | None = None,
    input_shape: tuple[int, ...] | None = None,
    *,
    finetune_data: Any = None,
    finetune_steps: int | None = None,
    finetune_options: Mapping[str, Any] | None = None,
) -> Sweep:
    """A pruning sweep, ready to ``start()`` (background) or ``run()`` (here).

    Args:
        model: pruned on copies; never changed.
        methods: names from :data:`METHODS`, callables ``fn(model, sparsity) -> Masks``, or a
            name -> callable mapping.
        sparsities: each in [0, 1): the fraction of weights for unstructured methods, of
            channels in every group for ``"channels"`` (whose ``weight_sparsity`` is higher:
            removing a channel also removes its consumers' inputs).
        evaluate: what to measure on every pruned, shrunk model: the Objective instances a
            Search uses (``[accuracy(data), params(), macs(shape), latency(shape)]``, one
            column each, under the same names), or one callable ``evaluate(model) -> float``
            (a column named after it) ``| dict`` (one column per key).
        finetune: how the masked copy is trained (in place, masks applied) before it is
            shrunk: ``"distill"`` (:func:`nasviz.training.recover` from the unpruned model:
            logit distillation, mixed with the labels' loss when there are labels), ``"train"``
            (:func:`nasviz.training.train` on the labels), or your ``finetune(model)``.
        finetune_data, finetune_steps, finetune_options: for ``"distill"`` / ``"train"``: the
            data (any form the training layer takes), the optimizer steps per point and more
            options of the run (``lr``, ``device``, ``precision``, ``batch_size``, ...). Each
            row then has ``finetune_loss`` (the last step's loss).
        input_shape: input shape with batch, e.g. ``(1, 1, 8, 8)``, to trace the model for
            ``channels`` and shrinking (default: guessed from the model); token models (an
            embedding first, or a Hugging Face language model) get token ids of this shape.

    Every shrunk model is checked against its masked model (as :func:`shrink` does); a point
    whose outputs differ is recorded as failed, never measured.

    Returns:
        A Sweep whose ``results`` has one row per (method, sparsity): ``trial`` (-1, -2, ...),
        ``state`` (COMPLETE / FAIL), ``method``, ``sparsity`` (as requested),
        ``weight_sparsity`` (the fraction of Linear/Conv weights actually removed), one column
        per objective, ``params`` of the shrunk model (also when no objective is named so),
        ``nonzero_params``, ``feasible``, ``error``, ``traceback`` and ``duration`` (s).
    """
    evaluations = _evaluations(evaluate)
    options = _finetune_options(finetune, finetune_data, finetune_steps, finetune_options)
    levels = [check_sparsity(s) for s in sparsities]
    if not levels:
        raise ConfigError("a sweep needs at least one sparsity")
    engine = SweepEngine(
        model,
        _resolve(methods),
        levels,
        evaluations,
        finetune,
        tuple(input_shape) if input_shape else None,
        finetune_data,
        options,
    )
    return Sweep(engine, name="nasviz-prune-sweep")


def _finetune_options(
    finetune: Any, data: Any, steps: Any, options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Checks the fine-tuning arguments now (before the sweep runs); the run's options."""
    if finetune is None or (callable(finetune) and not isinstance(finetune, str)):
        if data is not None or steps is not None or options:
            raise ConfigError(
                f"finetune_data / finetune_steps / finetune_options go with finetune in {FINETUNES}"
            )
        return {}
    if finetune not in FINETUNES:
        raise ConfigError(
            f"finetune must be None, one of {FINETUNES} or a callable finetune(model), "
            f"got {finetune!r}"
        )
    if data is None:
        raise ConfigError(f"finetune={finetune!r} needs finetune_data= (the data to train on)")
    steps = check_int("finetune_steps", steps, 1)
    options = dict(options or {})
    clash = sorted({"steps", "epochs", "step"} & set(options))
    if clash:
        raise ConfigError(f"finetune_options may not set {clash}; give finetune_steps=")
    from nasviz.data import as_batches

    as_batches(data, batch_size=options.get("batch_size"), what="finetune_data")  # fails now
    return {"steps": steps, **options}
