"""``Search``: a multi-objective architecture search that runs in the background.

A Search composes a :class:`~nasviz.runner.Run` (the background thread, controls, status,
listeners) with a :class:`~nasviz.search._engine.SearchEngine` (proposing, evaluating,
persisting) and an Optuna study (the storage of record). Everything it shows is rebuilt from
the study, so a search loaded after a restart shows exactly what the live one showed.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from nasviz.errors import ConfigError, RunError, StorageError
from nasviz.objectives import Objective, as_objective
from nasviz.runner import Event, Run, RunStatus
from nasviz.search import _pareto
from nasviz.search._engine import SearchEngine
from nasviz.search._evaluate import FunctionEvaluator, SupernetEvaluator, is_supernet
from nasviz.search._storage import (
    STUDY_NAME,
    check_study_name,
    is_result,
    load_existing,
    make_storage,
    open_study,
    read_spec,
    trial_row,
)
from nasviz.search._strategy import Strategy, make_strategy
from nasviz.space import Arch, SearchSpace

__all__ = ["Search"]

SETTINGS_KEY = "nasviz:settings"
CYCLE_PREFIX = "nasviz:cycle:"

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


class Search:
    """A multi-objective search over a supernet's subnets or over any function of an arch.

    Args:
        net_or_fn: a supernet (has ``.space``, ``.subnet(arch)``, ``.export(arch)``): every
            objective is measured as ``objective(net, arch)``. Or a function
            ``fn(arch) -> {objective name: value, ...}`` (picklable for process executors).
            None only for a loaded search that is browsed, not run.
        space: the space to search; defaults to the supernet's ``.space``.
        objectives: nasviz Objectives (``accuracy(val)``, ``macs(shape)``, ...) or, for a
            function, ``(name, "minimize" | "maximize")`` pairs.
        strategy: ``"nsga2"``, ``"random"``, ``"predictor"``, a Strategy instance or any
            Optuna sampler instance (TPE, GP, ...).
        budget: evaluations to reach, counting those already in the storage (>= 1).
        storage: where every evaluation is written before it is reported; see
            :func:`nasviz.search._storage.make_storage`. A storage that already holds this
            search (same space and objectives) is resumed; none of its archs is re-evaluated.
        executor: a ``concurrent.futures.Executor`` (e.g. ``dask.distributed.Client(...)
            .get_executor()``); None uses a thread pool of ``workers`` threads.
        workers: evaluations in flight at once (a supernet's compute at most one per CPU
            core at once in a process; the others wait for a core).
        seed: makes the strategy reproducible; with one worker, the same seed, strategy and
            budget give the same results.
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
            See :mod:`nasviz.search._storage`.
        canonical: ``canonical(arch) -> arch``, mapping every arch to the one representative of
            the archs that compute the same thing (for example archs that differ only in the
            width of a layer past the depth). None uses the supernet's ``canonical`` method when
            it has one, else every arch is its own representative. Only canonical archs are
            evaluated, stored and reported, and an arch equivalent to one already evaluated is
            never evaluated; strategies propose in canonical space. The mapping must return an
            arch of the space and be idempotent (``canonical(canonical(a)) == canonical(a)``).

    Example:
        >>> search = Search(lambda a: {"loss": a["x"], "cost": 3 - a["x"]}, space=SearchSpace({"x": [0, 1, 2, 3]}),
        ...                 objectives=[("loss", "minimize"), ("cost", "minimize")], strategy="random",
        ...                 budget=4, storage=":memory:", seed=0)
        >>> search.start().wait().state
        'finished'
    """

    def __init__(
        self,
        net_or_fn: Any,
        space: SearchSpace | Mapping[str, Sequence[Any]] | None = None,
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
        *,
        _study: optuna.Study | None = None,
    ):
        # Optuna logs every trial at INFO, from the run thread, into the notebook: keep it quiet.
        if optuna.logging.get_verbosity() < optuna.logging.WARNING:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
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
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise ConfigError(f"budget must be an int >= 1 (evaluations), got {budget!r}")
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be an int >= 1, got {workers!r}")
        if executor is not None and not isinstance(executor, cf.Executor):
            raise ConfigError(
                f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}"
            )
        if seed is not None and not isinstance(seed, int):
            raise ConfigError(f"seed must be an int or None, got {seed!r}")
        self.strategy = make_strategy(strategy, strategy_options or {})
        bounds, predicates = _constraints(constraints, names)
        if canonical is None and supernet:
            canonical = getattr(net_or_fn, "canonical", None)
        if canonical is not None and not callable(canonical):
            raise ConfigError(
                f"canonical must be a function arch -> arch (or None), got {type(canonical).__name__}"
            )
        if net_or_fn is None:
            self._evaluator = None
        elif supernet:
            self._evaluator = SupernetEvaluator(net_or_fn, self.objectives)
        elif callable(net_or_fn):
            self._evaluator = FunctionEvaluator(net_or_fn, self.objectives)
        else:
            raise ConfigError(
                f"net_or_fn must be a supernet (.space, .subnet, .export) or a function arch -> dict, "
                f"got {type(net_or_fn).__name__}"
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
                check_study_name(study_name),
                self.storage_name,
            )
        else:
            self.storage_name = str(storage)
        self.study = _study
        self.study.set_user_attr(
            SETTINGS_KEY, {**self.strategy.settings(), "budget": budget, "seed": seed}
        )
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
        )
        if canonical is not None:
            self._engine.canonical(self.space.largest())  # a broken mapping fails here, early
        self.run = Run(self._engine, name=f"search[{self.strategy.name}]")
        self.run.subscribe(self._on_event)

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
        objectives: Sequence[Objective | tuple[str, str]] | None = None,
        study_name: str | None = None,
        **kwargs: Any,
    ) -> Search:
        """Opens a stored search to browse it or, given ``net_or_fn``, to resume it.

        The space comes from the storage; objectives too unless given (a supernet search needs
        its objectives again, since functions are not stored). ``strategy`` and ``budget``
        default to the stored ones; other keyword arguments are those of :class:`Search`.
        """
        if (
            isinstance(storage, str | Path)
            and str(storage) != ":memory:"
            and "://" not in str(storage)
        ) and not Path(storage).expanduser().is_file():
            raise StorageError(f"no stored search at {str(storage)!r} (no such file)")
        optuna_storage, where = make_storage(storage, kwargs.get("durability", "process"))
        study = load_existing(optuna_storage, study_name, where)
        space, stored = read_spec(study)
        settings = dict(study.user_attrs.get(SETTINGS_KEY, {}))
        strategy = settings.pop("strategy", "random")
        budget, seed = settings.pop("budget", 100), settings.pop("seed", None)
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
        kwargs.setdefault("budget", budget)
        kwargs.setdefault("seed", seed)
        objectives = stored if objectives is None else objectives
        return cls(
            net_or_fn, space=space, objectives=objectives, storage=where, _study=study, **kwargs
        )

    # ---- the run -----------------------------------------------------------------------------
    def start(self) -> Search:
        """Starts (or continues) the search in the background; returns at once."""
        if self._evaluator is None:
            raise RunError(
                "this search was loaded without its network or function; pass net_or_fn to Search.load to run it"
            )
        self.run.start()
        return self

    def stop(self, wait: bool = True, timeout: float | None = None) -> RunStatus:
        """Stops after the evaluations in flight (they are persisted); ``start()`` continues."""
        return self.run.stop(wait, timeout)

    def pause(self) -> RunStatus:
        return self.run.pause()

    def resume(self) -> RunStatus:
        return self.run.resume()

    def wait(self, timeout: float | None = None, progress: bool = False) -> RunStatus:
        """Blocks until the search ends (or ``timeout``); see :meth:`nasviz.runner.Run.wait`."""
        return self.run.wait(timeout, progress)

    @property
    def status(self) -> RunStatus:
        """State, done/budget, failed, elapsed and ETA (``str(status)`` reads well)."""
        return self.run.status

    @property
    def error(self) -> BaseException | None:
        return self.run.error

    @property
    def traceback(self) -> str:
        return self.run.traceback

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Calls ``listener(event)`` for ``"result"`` (one row dict), ``"cycle"`` (predictor
        quality), ``"status"`` and ``"error"`` events; returns an unsubscribe function."""
        return self.run.subscribe(listener)

    def _on_event(self, event: Event) -> None:
        if event.kind == "cycle":  # persisted so a loaded search shows predictor quality too
            self.study.set_user_attr(f"{CYCLE_PREFIX}{event.data['cycle']:05d}", dict(event.data))

    # ---- results -----------------------------------------------------------------------------
    @property
    def results(self) -> pd.DataFrame:
        """One row per evaluated arch, in trial order: ``trial``, ``state`` (COMPLETE/FAIL), one
        column per dimension, one per objective (NaN when failed), ``feasible``, ``error``,
        ``traceback``, ``duration`` (s), ``worker``, then extra values the function returned."""
        rows = [
            trial_row(t, self.space, self.objectives)
            for t in self.study.get_trials(deepcopy=False)
            if is_result(t)
        ]
        columns = [
            "trial",
            "state",
            *self.space.names,
            *(o.name for o in self.objectives),
            "feasible",
            "error",
            "traceback",
            "duration",
            "worker",
        ]
        frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
        return frame.sort_values("trial", kind="stable").reset_index(drop=True)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    def _scored(self) -> pd.DataFrame:
        frame = self.results
        return frame[(frame["state"] == "COMPLETE") & frame["feasible"].astype(bool)]

    def pareto(self) -> pd.DataFrame:
        """The non-dominated rows among the completed, feasible ones (moocore)."""
        frame = self._scored()
        values = frame[[o.name for o in self.objectives]].to_numpy(dtype=np.float64)
        return frame[_pareto.pareto_mask(values, self.directions)]

    def reference_point(self) -> np.ndarray:
        """The default reference point: the nadir of all completed, feasible rows moved 10% of
        each objective's range further (see :mod:`nasviz.search._pareto`)."""
        frame = self._scored()
        return _pareto.default_reference(
            frame[[o.name for o in self.objectives]].to_numpy(dtype=np.float64), self.directions
        )

    def hypervolume(self, ref: Sequence[float] | None = None) -> float:
        """Hypervolume of the feasible completed rows up to ``ref`` (objective units; worse than
        every point: larger when minimizing, smaller when maximizing); ``ref=None`` uses
        :meth:`reference_point`. 0.0 when nothing completed."""
        frame = self._scored()
        if frame.empty:
            return 0.0
        values = frame[[o.name for o in self.objectives]].to_numpy(dtype=np.float64)
        ref = self.reference_point() if ref is None else ref
        return _pareto.hypervolume(values, self.directions, ref)

    def hypervolume_history(self, ref: Sequence[float] | None = None) -> pd.DataFrame:
        """Hypervolume after each evaluation (one reference point for the whole history):
        columns ``evaluations`` (1..n, failed ones included), ``trial`` and ``hypervolume``."""
        frame = self.results
        ok = (frame["state"] == "COMPLETE") & frame["feasible"].astype(bool)
        if not ok.any():
            return pd.DataFrame(
                {
                    "evaluations": np.arange(1, len(frame) + 1),
                    "trial": frame["trial"],
                    "hypervolume": 0.0,
                }
            )
        values = frame[[o.name for o in self.objectives]].to_numpy(dtype=np.float64)
        ref = self.reference_point() if ref is None else ref
        trace = np.zeros(len(frame))
        trace[ok.to_numpy()] = _pareto.hypervolume_trace(
            values[ok.to_numpy()], self.directions, ref
        )
        trace = np.maximum.accumulate(trace)
        return pd.DataFrame(
            {
                "evaluations": np.arange(1, len(frame) + 1),
                "trial": frame["trial"],
                "hypervolume": trace,
            }
        )

    @property
    def cycles(self) -> pd.DataFrame:
        """Predictor quality per cycle (predictor strategy): one row per cycle with ``cycle``,
        ``trained_on`` (evaluations it was fitted on), ``held_out`` and, per predicted objective
        ``<name>``: ``<name>_kendall_tau`` and ``<name>_mape`` on the next batch (held out: those
        archs were not in its training set), and ``<name>_predicted`` / ``<name>_measured``,
        lists of floats holding the predictions and the measured values of that batch, in the
        same order."""
        rows = [v for k, v in sorted(self.study.user_attrs.items()) if k.startswith(CYCLE_PREFIX)]
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"Search({self.strategy.name}, {self.status}, storage={self.storage_name!r})"


class _NoEvaluator:
    """Stands in for a loaded search that has no function (browsing only)."""

    def cheap_names(self) -> list[str]:
        return []

    def cheap(self, arch: Arch) -> dict[str, float]:
        return {}

    def start(self) -> None:
        raise RunError("this search has no function to evaluate archs")

    def end(self) -> None:
        pass

    def __call__(self, arch: Arch):
        raise RunError("this search has no function to evaluate archs")
