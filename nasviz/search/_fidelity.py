"""Multi-fidelity search: intermediate reports and early stopping for several objectives.

An evaluation function that takes a second argument, ``fn(arch, report)``, may call
``report(step, {objective: value, ...})`` as it trains (``step``: epochs, batches, any
increasing int). Every report is written to the study before ``report`` returns; a
:class:`Scheduler` then decides whether the trial goes on. When it stops one, ``report`` raises
:class:`Pruned`: let it propagate (the trial is recorded as PRUNED with its last reported
values, ``step`` and ``rung``, and counts against the budget).

Schedulers:
    * :class:`SuccessiveHalving` (asynchronous successive halving, ASHA): rungs at
      ``min_step * eta**k``; a trial reaching rung ``k`` goes on only if it ranks in the best
      ``1/eta`` of every trial that reached that rung so far (at least the best one). Ranking
      for several objectives: non-dominated rank first, then hypervolume contribution within
      the trial's front (larger first), so the front's most distinct members are kept.
    * :class:`Hyperband`: several successive-halving brackets that start at different steps
      (``min_step * eta**b``), trials spread over them in Hyperband's proportions.
    * Any ``optuna.pruners.BasePruner`` for a search with one objective (Optuna's pruners rank
      one value; they see the reports as the trial's intermediate values).

Shared studies: the rungs hold every search's reports (read from the study), so the trials of
all processes compete in one set of rungs; a resumed search rebuilds them from the study,
including reports of trials whose process died.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import moocore
import numpy as np
import optuna

from nasviz.errors import ConfigError, NasvizError, RunError, check_int
from nasviz.objectives import Objective
from nasviz.search import _optuna
from nasviz.search._pareto import default_reference, pareto_rank
from nasviz.space import Arch

__all__ = [
    "STEP_PREFIX",
    "Hyperband",
    "Pruned",
    "Reporter",
    "Scheduler",
    "SuccessiveHalving",
    "make_scheduler",
    "reports_of",
]

#: Trial system attribute prefix of one report: ``nasviz:step:<step>`` -> objective values.
STEP_PREFIX = "nasviz:step:"


class Pruned(NasvizError):
    """Raised by ``report`` when early stopping ends the trial; let it propagate."""


def reports_of(trial: optuna.trial.FrozenTrial) -> dict[int, list[float]]:
    """A trial's reports: step -> objective values (in objective order)."""
    n = len(STEP_PREFIX)
    return {
        int(key[n:]): list(value)
        for key, value in trial.system_attrs.items()
        if key.startswith(STEP_PREFIX)
    }


def _position(values: np.ndarray, directions: list[str], row: int) -> int:
    """Where row ``row`` of ``values`` ranks: by non-dominated rank, then by hypervolume
    contribution within its front (larger first); 0 is the best."""
    ranks = pareto_rank(values, directions)
    signs = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    contrib = np.zeros(len(values))
    if values.shape[1] > 1:
        ref = default_reference(values, directions) * signs
        points = values * signs
        for r in np.unique(ranks):
            members = np.flatnonzero(ranks == r)
            contrib[members] = moocore.hv_contributions(points[members], ref=ref)
    else:
        contrib = -(values[:, 0] * signs[0])  # one objective: better value first
    order = np.lexsort((np.arange(len(values)), -contrib, ranks))
    return int(np.flatnonzero(order == row)[0])


class Scheduler(ABC):
    """Decides at each report whether a trial goes on.

    Contract: :meth:`bind` once per search; :meth:`decide` from evaluation threads (several at
    once) and :meth:`observe` from the run thread; implementations lock their own state.
    """

    name = ""

    def check(self, objectives: list[Objective]) -> None:  # noqa: B027 - optional hook
        """Raises ConfigError when it cannot serve a search of these objectives (called before
        the search touches its storage)."""

    def bind(self, objectives: list[Objective], study: optuna.Study) -> None:
        self.check(objectives)
        self.objectives = objectives
        self.directions = [o.direction for o in objectives]
        self.study = study

    @abstractmethod
    def decide(
        self, arch: Arch, number: int, trial_id: int, step: int, values: list[float]
    ) -> tuple[bool, int | None]:
        """``(stop, rung)`` after a report: stop the trial?, and the highest rung reached."""

    def observe(self, arch: Arch, number: int, reports: dict[int, list[float]]) -> None:  # noqa: B027
        """Takes in another trial's reports (any search's, read from the study)."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-able settings, stored with the study (``make_scheduler`` rebuilds from them)."""


class SuccessiveHalving(Scheduler):
    """Asynchronous successive halving for several objectives (see the module docstring).

    Args:
        min_step: the first rung's step (the least any trial runs before a decision).
        eta: keep the best ``1/eta`` at each rung (>= 2).
        max_step: the last step a trial runs (no decision there); None: unbounded.
    """

    name = "halving"

    def __init__(self, *, min_step: int = 1, eta: int = 3, max_step: int | None = None):
        self.min_step = check_int("min_step", min_step, 1)
        self.eta = check_int("eta", eta, 2)
        if max_step is not None and check_int("max_step", max_step, 1) < min_step:
            raise ConfigError(f"max_step must be >= min_step ({min_step}), got {max_step}")
        self.max_step = max_step
        self._lock = threading.Lock()
        self._rungs: dict[tuple[int, int], dict[Arch, list[float]]] = {}  # (bracket, k) -> ...
        self._passed: dict[int, int] = {}  # trial number -> highest rung it reached
        self._own: dict[int, dict[int, list[float]]] = {}  # our trials' reports

    def _start(self, bracket: int) -> int:
        return self.min_step

    def bracket(self, number: int) -> int:
        return 0

    def _rung_steps(self, bracket: int, upto: int) -> list[int]:
        """Rung steps of ``bracket`` up to ``upto`` (decisions only below ``max_step``)."""
        steps, r = [], self._start(bracket)
        while r <= upto and (self.max_step is None or r < self.max_step):
            steps.append(r)
            r *= self.eta
        return steps

    def _enter(self, bracket: int, arch: Arch, reports: dict[int, list[float]]) -> list[int]:
        """Puts the first report at or past each rung into that rung; returns the rungs."""
        done = sorted(reports)
        entered = []
        for k, rung_step in enumerate(self._rung_steps(bracket, done[-1] if done else -1)):
            first = next(s for s in done if s >= rung_step)
            self._rungs.setdefault((bracket, k), {})[arch] = reports[first]
            entered.append(k)
        return entered

    def observe(self, arch: Arch, number: int, reports: dict[int, list[float]]) -> None:
        with self._lock:
            self._enter(self.bracket(number), arch, reports)

    def decide(self, arch, number, trial_id, step, values):
        bracket = self.bracket(number)
        with self._lock:
            mine = self._own.setdefault(number, {})
            mine[step] = values
            before = self._passed.get(number, -1)
            for k in self._enter(bracket, arch, mine):
                if k <= before:
                    continue
                table = self._rungs[bracket, k]
                archs = list(table)
                rows = np.array([table[a] for a in archs], dtype=np.float64)
                keep = max(1, len(archs) // self.eta)
                self._passed[number] = k
                if _position(rows, self.directions, archs.index(arch)) >= keep:
                    return True, k
            return False, self._passed.get(number)

    def settings(self) -> dict[str, Any]:
        return {
            "pruner": self.name,
            "min_step": self.min_step,
            "eta": self.eta,
            "max_step": self.max_step,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_step={self.min_step}, eta={self.eta}, max_step={self.max_step})"


class Hyperband(SuccessiveHalving):
    """Hyperband: successive-halving brackets starting at ``min_step * eta**b`` for
    ``b = 0 .. floor(log_eta(max_step / min_step))``; trials go to brackets in turn, in the
    proportions Hyperband gives them (more to the brackets that stop earlier), interleaved so
    that a small budget meets every bracket.

    Args:
        min_step, eta: as for :class:`SuccessiveHalving`.
        max_step: the last step (required: it sets the brackets).
    """

    name = "hyperband"

    def __init__(self, *, min_step: int = 1, eta: int = 3, max_step: int = 81):
        super().__init__(min_step=min_step, eta=eta, max_step=check_int("max_step", max_step, 1))
        s_max = math.floor(math.log(max_step / min_step, eta) + 1e-9)
        weights = [
            math.ceil((s_max + 1) / (s_max - b + 1) * eta ** (s_max - b)) for b in range(s_max + 1)
        ]
        self._cycle: list[int] = []  # smooth weighted round robin: brackets interleaved
        credit = [0] * len(weights)
        for _ in range(sum(weights)):
            credit = [c + w for c, w in zip(credit, weights, strict=True)]
            b = max(range(len(credit)), key=credit.__getitem__)
            credit[b] -= sum(weights)
            self._cycle.append(b)

    def _start(self, bracket: int) -> int:
        return self.min_step * self.eta**bracket

    def bracket(self, number: int) -> int:
        return self._cycle[number % len(self._cycle)]


class OptunaPruner(Scheduler):
    """An Optuna pruner on a one-objective search: reports are the trial's intermediate values
    and the pruner decides as in Optuna."""

    name = "optuna"

    def __init__(self, pruner: optuna.pruners.BasePruner):
        self.pruner = pruner

    def check(self, objectives):
        if len(objectives) != 1:
            raise ConfigError(
                f"an Optuna pruner ({type(self.pruner).__name__}) ranks one objective; this search "
                f"has {len(objectives)}. Use pruner='halving' (nasviz.search.SuccessiveHalving) "
                "or Hyperband for several objectives"
            )

    def decide(self, arch, number, trial_id, step, values):
        trial = _optuna.storage_of(self.study).get_trial(trial_id)
        return bool(self.pruner.prune(self.study, trial)), None

    def settings(self) -> dict[str, Any]:
        return {"pruner": self.name, "class": type(self.pruner).__name__}


def make_scheduler(pruner: Any) -> Scheduler | None:
    """A scheduler from ``Search(pruner=...)``: None, ``"halving"``, a Scheduler, or an Optuna
    pruner instance."""
    if pruner is None or isinstance(pruner, Scheduler):
        return pruner
    if pruner == "halving":
        return SuccessiveHalving()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return OptunaPruner(pruner)
    raise ConfigError(
        f"pruner must be None, 'halving', nasviz.search.SuccessiveHalving(...) / Hyperband(...) "
        f"or an optuna pruner instance (one objective), got {pruner!r}"
    )


def scheduler_from_settings(settings: Mapping[str, Any]) -> Scheduler | None:
    """Rebuilds a stored nasviz scheduler (Optuna pruners are not stored: pass them again)."""
    kind = settings.get("pruner")
    options = {k: settings[k] for k in ("min_step", "eta", "max_step") if k in settings}
    if kind == "halving":
        return SuccessiveHalving(**options)
    if kind == "hyperband":
        return Hyperband(**options)
    return None


class Reporter:
    """The ``report`` callable an evaluation function gets: ``report(step, values)``.

    Writes each report to the trial (``nasviz:step:<step>``; for one objective also Optuna's
    intermediate value), asks the scheduler, and raises :class:`Pruned` when it stops the
    trial. Raises RunError when called after the trial ended, ConfigError for bad input.
    """

    def __init__(
        self,
        storage: Any,
        trial_id: int,
        number: int,
        arch: Arch,
        objectives: list[Objective],
        scheduler: Scheduler | None,
    ):
        self._storage = storage
        self._trial_id = trial_id
        self.number = number
        self.arch = arch
        self._objectives = objectives
        self._scheduler = scheduler
        self.step: int | None = None
        self.values: list[float] | None = None
        self.rung: int | None = None
        self.stopped = False
        self._ended = False
        self._lock = threading.Lock()

    def __call__(self, step: int, values: Mapping[str, Any]) -> None:
        with self._lock:
            if self._ended:
                raise RunError(
                    f"report() was called after trial {self.number} ended (its function "
                    "returned, failed or was stopped); report only while the function runs"
                )
            step = check_int("report step", step, 0)
            if self.step is not None and step <= self.step:
                raise ConfigError(
                    f"report steps must increase: got step {step} after step {self.step}"
                )
            if not isinstance(values, Mapping):
                raise ConfigError(
                    f"report(step, values): values must be a dict {{objective: value}}, got "
                    f"{type(values).__name__}"
                )
            missing = [o.name for o in self._objectives if o.name not in values]
            if missing:
                raise ConfigError(
                    f"report at step {step} lacks objective(s) {missing}; it gave {sorted(values)}"
                )
            row = [o.as_number(values[o.name]) for o in self._objectives]
            bad = [
                o.name for o, v in zip(self._objectives, row, strict=True) if not math.isfinite(v)
            ]
            if bad:
                raise ConfigError(f"report at step {step}: {bad} not finite: {row}")
            self._storage.set_trial_system_attr(self._trial_id, f"{STEP_PREFIX}{step}", row)
            if len(row) == 1:
                self._storage.set_trial_intermediate_value(self._trial_id, step, row[0])
            self.step, self.values = step, row
        if self._scheduler is None:
            return
        stop, rung = self._scheduler.decide(self.arch, self.number, self._trial_id, step, row)
        self.rung = rung
        if stop:
            self.stopped = True
            raise Pruned(
                f"trial {self.number} stopped early at step {step} (rung {rung}) by "
                f"{self._scheduler!r}: let this exception end the evaluation function"
            )

    def end(self) -> None:
        """Called when the evaluation ended: later reports raise RunError."""
        with self._lock:
            self._ended = True
