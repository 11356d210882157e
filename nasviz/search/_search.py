"""``Search``: a multi-objective architecture search that runs in the background.

A Search composes a :class:`~nasviz.runner.Run` (the background thread, controls, status,
listeners) with a :class:`~nasviz.search._engine.SearchEngine` (proposing, claiming,
evaluating, persisting) and an Optuna study (the storage of record). Everything it shows is
rebuilt from the study, so a search loaded after a restart, or one of several processes
sharing a study, shows every evaluation.

Running a search whose storage already holds its budget (the same script run twice) does not
fail: ``start()`` and ``run()`` return at once with status ``finished`` and a message saying
so, and the results are there to look at; a larger ``budget`` continues it.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from torch import nn

from nasviz._compat import keyword_only_after
from nasviz.errors import ConfigError, RunError, StorageError, check_int, check_real
from nasviz.objectives import Objective, as_objective
from nasviz.runner import Event, Run, RunStatus
from nasviz.search._compat import BlockingRun
from nasviz.search._engine import HEARTBEAT_S, SearchEngine
from nasviz.search._evaluate import FunctionEvaluator, SupernetEvaluator, is_supernet
from nasviz.search._fidelity import Scheduler, make_scheduler, scheduler_from_settings
from nasviz.search._keep import KeptModels
from nasviz.search._results import CYCLE_PREFIX, ResultsView
from nasviz.search._storage import (
    RESULT_COLUMNS,
    STUDY_NAME,
    check_durability,
    check_study_name,
    load_existing,
    make_storage,
    open_study,
    read_spec,
)
from nasviz.search._strategy import Strategy, make_strategy
from nasviz.space import Arch, SearchSpace

__all__ = ["Search"]

SETTINGS_KEY = "nasviz:settings"
#: Stored settings that are not the strategy's own.
_SEARCH_SETTINGS = ("budget", "seed", "pruner", "function")
#: Arguments after ``net_or_fn`` and ``space`` that could be passed by position before 0.2.
_OLD_ORDER = (
    "objectives",
    "strategy",
    "budget",
    "storage",
    "executor",
    "workers",
    "seed",
    "constraints",
    "study_name",
    "strategy_options",
    "durability",
    "canonical",
)
_MAX_SEED = 2**32 - 1

Constraint = Mapping[str, float] | Callable[[Arch], bool]


def _constraints(constraints: Constraint | Sequence[Constraint] | None, names: list[str]):
    """Splits constraints into objective bounds and arch predicates."""
    items = (
        []
        if constraints is None
        else (
            [constraints]
            if isinstance(constraints, Mapping) or callable(constraints)
            else list(constraints)
        )
    )
    bounds: dict[str, float] = {}
    predicates: list[Callable[[Arch], bool]] = []
    for item in items:
        if isinstance(item, Mapping):
            for key, bound in item.items():
                if key not in names:
                    raise ConfigError(
                        f"constraint on {key!r}, which is not an objective; objectives: {names}"
                    )
                if not isinstance(bound, int | float) or not np.isfinite(bound):
                    raise ConfigError(
                        f"constraint {key!r}: the bound must be a finite number, got {bound!r}"
                    )
                bounds[key] = float(bound)
        elif callable(item):
            predicates.append(item)
        else:
            raise ConfigError(
                "constraints are {objective: bound} (<= for minimized, >= for maximized objectives) "
                f"and/or predicates arch -> bool; got {item!r}"
            )
    return bounds, predicates


def _devices(devices: Any, supernet: bool, executor: Any) -> list[Any] | None:
    """The resolved ``torch.device`` s of ``Search(devices=...)`` (checked now), or None."""
    if devices is None:
        return None
    from nasviz.training._device import resolve_device

    if isinstance(devices, str) or not isinstance(devices, Sequence) or not devices:
        raise ConfigError(
            f"devices must be a non-empty list such as ['cuda:0', 'cuda:1'], got {devices!r}"
        )
    if not supernet:
        raise ConfigError(
            "devices= places copies of a supernet; a function search chooses its own device"
        )
    if executor is not None:
        raise ConfigError("devices= runs evaluations in this process: not with executor=")
    return [resolve_device(d) for d in devices]


def function_path(fn: Any) -> str | None:
    """``"module:qualname"`` of a function another process can import, else None (lambdas,
    functions defined in a notebook, a script run as ``__main__`` or inside a function)."""
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or not name or "<" in name:
        return None
    return f"{module}:{name}"


class Search(ResultsView):
    """A multi-objective search over a supernet's subnets or over any function of an arch.

    Args:
        net_or_fn: a supernet (has ``.space``, ``.subnet(arch)``, ``.export(arch)``): every
            objective is measured as ``objective(net, arch)``. Or a function
            ``fn(arch) -> {objective name: value, ...}`` (picklable for process executors), or
            ``fn(arch, report)`` to report intermediate values (see ``pruner``); the function
            may instead return the model it built and trained, or ``(model, {name: value})``,
            and nasviz's objectives (``accuracy(val)``, ``params()``, ``macs(shape)``,
            ``latency(shape)``) measure that model. None only for a loaded search that is
            browsed, not run. A torch model that is not a supernet is refused (convert it
            with :func:`nasviz.supernet.convert`).
        space: the space to search; defaults to the supernet's ``.space``.
        objectives: nasviz Objectives (``accuracy(val)``, ``macs(shape)``, ...) or, for a
            function, ``(name, "minimize" | "maximize")`` pairs.
        strategy: ``"nsga2"``, ``"random"``, ``"predictor"``, a Strategy instance or any
            Optuna sampler instance (TPE, GP, ...).
        budget: evaluations to reach, counting those already in the storage, every process's
            (>= 1). Pruned evaluations count.
        storage: where every evaluation is written before it is reported; see
            :mod:`nasviz.search._storage`. A storage that already holds this search (same
            space and objectives) is resumed; none of its archs is evaluated again. Any number
            of processes or machines may run a search on one storage and study at once: they
            share the budget and never evaluate one arch twice (see
            :mod:`nasviz.search._ledger`; ``nasviz worker`` joins from a shell).
        executor: a ``concurrent.futures.Executor`` (e.g. ``dask.distributed.Client(...)
            .get_executor()``); None uses a thread pool of ``workers`` threads.
        workers: evaluations in flight at once in this process.
        seed: makes the strategy reproducible (an int in ``0 .. 2**32 - 1``); with one worker,
            the same seed, strategy and budget give the same results.
        constraints: ``{objective: bound}`` (``<=`` a minimized, ``>=`` a maximized objective)
            and/or predicates ``arch -> bool``. Predicates and bounds on cheap objectives are
            checked before evaluating (infeasible archs are never evaluated); other bounds mark
            rows ``feasible=False``, and those rows are left out of the Pareto front.
        study_name: the Optuna study's name in the storage.
        strategy_options: keyword arguments for a strategy given by name (e.g.
            ``{"population_size": 30}`` for nsga2).
        durability: for journal-file storages, ``"process"`` (default: each write reaches the
            OS before it returns, so a killed kernel or process loses nothing evaluated) or
            ``"os"`` (each write is also fsynced, surviving an OS crash; several ms per write).
        canonical: ``canonical(arch) -> arch``, mapping every arch to the one representative of
            the archs that compute the same thing (for example archs that differ only in the
            width of a layer past the depth). None uses the supernet's ``canonical`` method when
            it has one, else every arch is its own representative. Only canonical archs are
            evaluated, stored and reported, and an arch equivalent to one already evaluated is
            never evaluated; strategies propose in canonical space. The mapping must return an
            arch of the space and be idempotent (``canonical(canonical(a)) == canonical(a)``).
        pruner: early stopping for a function that reports (``fn(arch, report)``):
            ``"halving"`` (:class:`~nasviz.search.SuccessiveHalving` with its defaults), a
            SuccessiveHalving or :class:`~nasviz.search.Hyperband` instance (several
            objectives), or an Optuna pruner (one objective). None: trials always run to the
            end (reports are still stored).
        heartbeat: seconds between renewals of the leases of this search's evaluations in
            flight; another process declares an evaluation dead when its lease (3 heartbeats)
            expires, or at once when its process is gone from this machine.
        devices: for a supernet search, where evaluations run: one copy of the net per device
            (``["cuda:0", "cuda:1"]``, ``["cuda"]``, ``["auto"]``; the net itself stays where
            it is, unchanged), each evaluation on a free copy, so ``workers`` (default: one per
            device) evaluations run at once, one per device. None: on the net itself, where
            it is. Not with ``executor=``.
        keep_models: a folder: for a function that returns models, each completed trial's
            model is saved there (``trial-<number>.pt``, its state dict) and, whenever a run
            ends, only the Pareto front's are kept; :meth:`load_model` reads one back.

    Only ``net_or_fn`` and ``space`` may be passed by position (the others by position work
    until nasviz 0.3, with a FutureWarning).

    Example:
        >>> search = Search(lambda a: {"loss": a["x"], "cost": 3 - a["x"]},
        ...                 SearchSpace({"x": [0, 1, 2, 3]}),
        ...                 objectives=[("loss", "minimize"), ("cost", "minimize")],
        ...                 strategy="random", budget=4, storage=":memory:", seed=0)
        >>> search.run().state
        'finished'
    """

    @keyword_only_after(*_OLD_ORDER)
    def __init__(
        self,
        net_or_fn: Any,
        space: SearchSpace | Mapping[str, Sequence[Any]] | None = None,
        *,
        objectives: Sequence[Objective | tuple[str, str]] = (),
        strategy: str | Strategy | optuna.samplers.BaseSampler = "nsga2",
        budget: int = 100,
        storage: str | Path | optuna.storages.BaseStorage | None = None,
        executor: cf.Executor | None = None,
        workers: int = 1,
        seed: int | None = None,
        constraints: Constraint | Sequence[Constraint] | None = None,
        study_name: str = STUDY_NAME,
        strategy_options: Mapping[str, Any] | None = None,
        durability: str = "process",
        canonical: Callable[[Arch], Arch] | None = None,
        pruner: str | Scheduler | optuna.pruners.BasePruner | None = None,
        heartbeat: float = HEARTBEAT_S,
        keep_models: str | Path | None = None,
        devices: Sequence[Any] | None = None,
        _study: optuna.Study | None = None,
    ):
        # Everything is checked before the storage is touched: bad input creates no file.
        supernet = is_supernet(net_or_fn)
        if space is None:
            if not supernet:
                raise ConfigError(
                    "space= is required unless net_or_fn is a supernet (which has .space)"
                )
            space = net_or_fn.space
        self.space = space if isinstance(space, SearchSpace) else SearchSpace(space)
        self.objectives = [as_objective(o) for o in objectives]
        names = [o.name for o in self.objectives]
        if not self.objectives:
            raise ConfigError(
                "objectives= is empty; give at least one, e.g. [('loss', 'minimize')]"
            )
        if len(set(names)) != len(names) or set(names) & set(self.space.names):
            raise ConfigError(
                f"objective names must be unique and differ from dimension names; got {names}"
            )
        taken = [n for n in [*self.space.names, *names] if n in RESULT_COLUMNS]
        if taken:
            raise ConfigError(
                f"{taken} name(s) a column Search.results keeps for itself; rename the "
                f"objective or dimension (reserved: {list(RESULT_COLUMNS)})"
            )
        budget = check_int("budget", budget, 1)
        workers = check_int("workers", workers, 1)
        if executor is not None and not isinstance(executor, cf.Executor):
            raise ConfigError(
                f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}"
            )
        if seed is not None:
            seed = check_int("seed", seed, 0)
            if seed > _MAX_SEED:
                raise ConfigError(f"seed must be an int in 0 .. 2**32 - 1, got {seed}")
        heartbeat = check_real("heartbeat (seconds)", heartbeat)
        if heartbeat <= 0:
            raise ConfigError(f"heartbeat (seconds) must be > 0, got {heartbeat}")
        check_durability(durability)
        check_study_name(study_name)
        self.strategy = make_strategy(strategy, strategy_options or {})
        self.scheduler = make_scheduler(pruner)
        if self.scheduler is not None:
            self.scheduler.check(self.objectives)
        bounds, predicates = _constraints(constraints, names)
        #: the constraints' objective bounds, ``{objective: bound}`` (e.g. for the explorer's
        #: hardware check)
        self.bounds = dict(bounds)
        if canonical is None and supernet:
            canonical = getattr(net_or_fn, "canonical", None)
        if canonical is not None and not callable(canonical):
            raise ConfigError(
                f"canonical must be a function arch -> arch (or None), got {type(canonical).__name__}"
            )
        if isinstance(net_or_fn, nn.Module) and not supernet:
            raise ConfigError(
                f"Search got a torch model ({type(net_or_fn).__name__}) that is not a supernet: "
                "make it one with nasviz.supernet.convert(model, example_input), or pass a "
                "function arch -> model or dict"
            )
        self.kept = None if keep_models is None else KeptModels(keep_models)
        if self.kept is not None and supernet:
            raise ConfigError(
                "keep_models is for a function that returns the models it trains; a "
                "supernet's subnets are exported with net.export(arch)"
            )
        placed = _devices(devices, supernet, executor)
        if placed and workers == 1:
            workers = len(placed)
        if net_or_fn is None:
            self._evaluator = None
        elif supernet:
            self._evaluator = SupernetEvaluator(net_or_fn, self.objectives, placed)
        elif callable(net_or_fn):
            self._evaluator = FunctionEvaluator(
                net_or_fn, self.objectives, keep=self.kept is not None
            )
        else:
            raise ConfigError(
                f"net_or_fn must be a supernet (.space, .subnet, .export) or a function arch -> dict, "
                f"got {type(net_or_fn).__name__}"
            )
        if (
            self.scheduler is not None
            and self._evaluator is not None
            and not self._evaluator.reports
        ):
            raise ConfigError(
                "pruner= stops trials early from their reports, so it needs a function that "
                "takes (arch, report) and calls report(step, {objective: value}) as it trains"
            )
        self._net = net_or_fn if supernet else None
        self.budget = budget
        if _study is None:
            optuna_storage, self.storage_name = make_storage(storage, durability)
            _study = open_study(
                optuna_storage,
                self.space,
                self.objectives,
                optuna.samplers.RandomSampler(seed),
                study_name,
                self.storage_name,
            )
        else:
            self.storage_name = str(storage)
        self.study = _study
        settings = {
            **self.strategy.settings(),
            "budget": budget,
            "seed": seed,
            "pruner": None if self.scheduler is None else self.scheduler.settings(),
            "function": function_path(net_or_fn) if not supernet else None,
        }
        if self._evaluator is not None and self.study.user_attrs.get(SETTINGS_KEY) != settings:
            self.study.set_user_attr(SETTINGS_KEY, settings)  # never while only browsing
        self._engine = SearchEngine(
            self.study,
            self.space,
            self.objectives,
            self.strategy,
            self._evaluator or _NoEvaluator(),
            budget,
            executor,
            workers,
            seed,
            bounds,
            predicates,
            canonical,
            self.scheduler,
            heartbeat,
            self._net,
        )
        if canonical is not None:
            self._engine.canonical(self.space.largest())  # a broken mapping fails here, early
        self._engine.keep = self.kept
        self._run = Run(self._engine, name=f"search[{self.strategy.name}]")
        self._run.subscribe(self._on_event)

    @property
    def net(self) -> Any:
        """The supernet being searched, or None for a function search (or a browsed one)."""
        return self._net

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        storage: str | Path | optuna.storages.BaseStorage,
        net_or_fn: Any = None,
        *,
        objectives: Sequence[Objective | tuple[str, str]] | None = None,
        study_name: str | None = None,
        space: SearchSpace | Mapping[str, Sequence[Any]] | None = None,
        **kwargs: Any,
    ) -> Search:
        """Opens a stored search to browse it or, given ``net_or_fn``, to resume it (or to join
        a search other processes are running on that storage).

        Browsing (no ``net_or_fn``) only reads: nothing is written to the storage. The space
        comes from the storage (``space=`` is checked against it); objectives too unless given
        (a supernet search needs its objectives again, since functions are not stored).
        ``strategy``, ``budget``, ``seed`` and ``pruner`` default to the stored ones; other
        keyword arguments are those of :class:`Search`.

        Raises:
            StorageError: no such file, no such study, a study of another space.
        """
        optuna_storage, where = make_storage(
            storage,
            kwargs.get("durability", "process"),
            writable=net_or_fn is not None,
            must_exist=True,
        )
        study = load_existing(optuna_storage, study_name, where)
        stored_space, stored = read_spec(study)
        if space is not None:
            space = space if isinstance(space, SearchSpace) else SearchSpace(space)
            if space != stored_space:
                raise StorageError(
                    f"storage {where!r} (study {study.study_name!r}) holds a search over another "
                    f"space: {stored_space!r}; yours is {space!r}"
                )
        settings = dict(study.user_attrs.get(SETTINGS_KEY, {}))
        own = {k: settings.pop(k, None) for k in _SEARCH_SETTINGS}
        strategy = settings.pop("strategy", "random")
        if (
            "strategy" not in kwargs
            and strategy not in ("sampler", "")
            and not settings.get("sampler")
        ):
            kwargs["strategy"] = strategy
            kwargs.setdefault(
                "strategy_options", {k: v for k, v in settings.items() if v is not None} or None
            )
        kwargs.setdefault("strategy", "random")
        kwargs.setdefault("budget", own["budget"] or 100)
        kwargs.setdefault("seed", own["seed"])
        if "pruner" not in kwargs and own["pruner"]:
            kwargs["pruner"] = scheduler_from_settings(own["pruner"])
        objectives = stored if objectives is None else objectives
        return cls(
            net_or_fn,
            stored_space,
            objectives=objectives,
            storage=where,
            study_name=study.study_name,
            _study=study,
            **kwargs,
        )

    # ---- the run -----------------------------------------------------------------------------
    def _ready(self) -> bool:
        """False (status set to finished, with why) when nothing is left to run."""
        if self._evaluator is None:
            raise RunError(
                "this search was loaded without its network or function; pass net_or_fn to Search.load to run it"
            )
        if self._run.status.active or not self._engine.finished():
            return True
        done = self._engine.ledger.done
        self._run.mark_finished(
            f"nothing left to run: the storage holds {done} evaluations for a budget of "
            f"{self.budget}; pass a larger budget= to continue"
        )
        return False

    def start(self) -> Search:
        """Starts (or continues) the search in the background; returns at once. A search whose
        storage already holds its budget does not start: its status becomes ``finished``, with
        a message saying why."""
        if self._ready():
            self._run.start()
        return self

    def _run_here(self) -> RunStatus:
        if self._ready():
            return self._run.run()
        return self._run.status

    @property
    def run(self) -> BlockingRun:
        """``search.run()`` runs the search in the calling thread and returns its final status
        (like ``train_supernet(...).run()``); returns at once when the storage already holds
        the budget. Stop it from another thread with :meth:`stop`."""
        return BlockingRun(self._run_here, self._run)

    def stop(self, wait: bool = True, timeout: float | None = None) -> RunStatus:
        """Stops after the evaluations in flight (they are persisted); ``start()`` continues."""
        return self._run.stop(wait, timeout)

    def pause(self) -> RunStatus:
        return self._run.pause()

    def resume(self) -> RunStatus:
        return self._run.resume()

    def wait(self, timeout: float | None = None, progress: bool = False) -> RunStatus:
        """Blocks until the search ends (or ``timeout``); see :meth:`nasviz.runner.Run.wait`."""
        return self._run.wait(timeout, progress)

    @property
    def status(self) -> RunStatus:
        """State, done/budget, failed, elapsed and ETA (``str(status)`` reads well)."""
        return self._run.status

    @property
    def error(self) -> BaseException | None:
        return self._run.error

    @property
    def traceback(self) -> str:
        return self._run.traceback

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Calls ``listener(event)`` for ``"result"`` (one row dict, as a row of
        :attr:`results`; other processes' results on a shared study arrive too),
        ``"cycle"`` (predictor quality), ``"status"`` and ``"error"`` events; returns an
        unsubscribe function."""
        return self._run.subscribe(listener)

    def _on_event(self, event: Event) -> None:
        if event.kind == "cycle":  # persisted so a loaded search shows predictor quality too
            self.study.set_user_attr(f"{CYCLE_PREFIX}{event.data['cycle']:05d}", dict(event.data))
        elif event.kind == "status" and event.data.ended and self.kept is not None:
            self.kept.prune({int(t) for t in self.pareto()["trial"]})

    def load_model(self, trial: int, model: nn.Module) -> nn.Module:
        """Loads the kept model of ``trial`` (see ``keep_models``) into ``model``, a model the
        caller builds for that trial's arch, and returns it."""
        if self.kept is None:
            raise ConfigError("load_model needs Search(..., keep_models=folder)")
        return self.kept.load(check_int("trial", trial, 0), model)

    def __repr__(self) -> str:
        return f"Search({self.strategy.name}, {self.status}, storage={self.storage_name!r})"


class _NoEvaluator:
    """Stands in for a loaded search that has no function (browsing only)."""

    reports = False

    def cheap_names(self) -> list[str]:
        return []

    def cheap(self, arch: Arch, names: Any = None) -> dict[str, float]:
        return {}

    def start(self) -> None:
        raise RunError("this search has no function to evaluate archs")

    def end(self) -> None:
        pass

    def __call__(self, arch: Arch, report: Any = None):
        raise RunError("this search has no function to evaluate archs")
