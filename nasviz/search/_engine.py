"""The search as a stepwise :class:`~nasviz.runner.Engine`: propose, submit, persist, report.

One ``step`` fills the executor up to ``workers`` evaluations in flight, waits for at least one
to finish, writes each finished one to the Optuna storage and only then returns its
``"result"`` event. Stop and pause therefore take effect within one evaluation; evaluations
still in flight when a run ends are waited for and persisted in ``teardown``.
"""

from __future__ import annotations

import concurrent.futures as cf
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

from nasviz.errors import ConfigError, RunError
from nasviz.objectives import Objective
from nasviz.runner import Engine, Event, Progress, lower_thread_priority
from nasviz.search._evaluate import Outcome, evaluate
from nasviz.search._storage import RECORD_KEY, distributions, is_result, trial_row
from nasviz.search._strategy import Proposal, SearchContext, Strategy
from nasviz.space import Arch, SearchSpace, as_rng

__all__ = ["SearchEngine"]

#: A search with no successful evaluation stops (status "failed") after this many failures.
FAIL_FAST = 10
#: Consecutive rejected proposals (duplicates, infeasible) before random unseen archs fill in.
MAX_REJECTS = 64
#: Spaces up to this size are enumerated when random draws stop finding unseen archs.
ENUMERABLE = 200_000


@dataclass(frozen=True)
class _InFlight:
    """An evaluation submitted to the executor: its trial and whether a sampler proposed it."""

    number: int
    trial_id: int
    arch: Arch
    sampled: bool


class SearchEngine(Engine):
    """Runs a search on an Optuna study.

    Args:
        study: the study (created or loaded by the caller; its user attrs hold the space).
        space, objectives: what is searched and measured.
        strategy: proposes archs (bound here).
        evaluator: picklable ``evaluator(arch) -> (values, extras)`` (called from executor
            workers, concurrently) with ``cheap(arch)``, ``cheap_names()`` and ``start()`` /
            ``end()`` (called by the run thread around each run's evaluations).
        budget: evaluations to reach (counting those already in the study).
        executor: where evaluations run; None creates a thread pool per start.
        workers: evaluations in flight at once.
        seed: seed of the strategy's generator.
        bounds: objective name -> bound (see :class:`~nasviz.search._strategy.SearchContext`).
        predicates: ``predicate(arch) -> bool`` constraints checked before evaluating.
        canonical: ``canonical(arch) -> arch``, the representative of the archs that compute
            the same subnet (e.g. ``ElasticMLP.canonical``), or None (every arch is its own).
            Only canonical archs are evaluated and stored, and an arch whose canonical form is
            known is never evaluated.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        objectives: list[Objective],
        strategy: Strategy,
        evaluator: Any,
        budget: int,
        executor: cf.Executor | None,
        workers: int,
        seed: int | None,
        bounds: dict[str, float],
        predicates: list[Callable[[Arch], bool]],
        canonical: Callable[[Arch], Arch] | None = None,
    ):
        self.study = study
        self.space = space
        self.objectives = objectives
        self.strategy = strategy
        self.evaluator = evaluator
        self.budget = budget
        self.workers = workers
        self._user_executor = executor
        self._executor: cf.Executor | None = None
        self._bounds = bounds
        self._predicates = predicates
        self._cheap_names = set(evaluator.cheap_names())
        self._pre_bounds = {k: v for k, v in bounds.items() if k in self._cheap_names}
        self._post_bounds = {k: v for k, v in bounds.items() if k not in self._cheap_names}
        self._signs = {o.name: o.sign for o in objectives}
        self._dists = distributions(space)
        self._rng = as_rng(seed)
        self._canonical_fn = canonical
        self._canon_cache: dict[Arch, Arch] = {}
        self._known: set[Arch] = set()  # canonical archs evaluated, in flight or rejected
        self._pending: dict[cf.Future, _InFlight] = {}
        self._retry: list[Arch] = []
        self._stale: list[optuna.trial.FrozenTrial] = []
        self._cheap_cache: dict[Arch, dict[str, float]] = {}
        self._feasible_cache: dict[Arch, bool] = {}
        self._hist_archs: list[Arch] = []
        self._hist_values: list[list[float]] = []
        self._done = self._failed = self._succeeded = 0
        self._first_error: Outcome | None = None
        self._exhausted = False
        self._scan()
        strategy.bind(
            SearchContext(
                space=space,
                objectives=objectives,
                seed=seed,
                rng=self._rng,
                study=study,
                is_known=self.is_known,
                is_feasible=self.is_feasible,
                cheap=self.cheap,
                bounds=dict(bounds),
                history=self.history,
                random_unseen=self.random_unseen,
                canonical=self.canonical,
                equivalences=canonical is not None,
            )
        )
        sampler = strategy.sampler()
        study.sampler = sampler if sampler is not None else optuna.samplers.RandomSampler(seed)

    # ---- what is in the study already ---------------------------------------------------
    def _scan(self) -> None:
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.RUNNING:
                self._stale.append(t)
                continue
            arch = self._arch_of(t)
            if arch is None or t.user_attrs.get(RECORD_KEY, {}).get("skipped") == "equivalent":
                continue  # a sampler's trial replaced by one of its canonical form (scanned too)
            arch = self.canonical(arch)  # stored canonical; older storages may hold others
            self._known.add(arch)
            if is_result(t):
                self._count(t.state == TrialState.COMPLETE, arch, t.values)

    def _arch_of(self, trial: optuna.trial.FrozenTrial) -> Arch | None:
        if any(name not in trial.params for name in self.space.names):
            return None
        return self.space.validate({name: trial.params[name] for name in self.space.names})

    def _count(self, ok: bool, arch: Arch, values: list[float] | None) -> None:
        self._done += 1
        if ok:
            self._succeeded += 1
            self._hist_archs.append(arch)
            self._hist_values.append(list(values))
        else:
            self._failed += 1

    def history(self) -> tuple[list[Arch], np.ndarray]:
        values = np.array(self._hist_values, dtype=np.float64).reshape(
            len(self._hist_values), len(self.objectives)
        )
        return list(self._hist_archs), values

    # ---- equivalent archs ----------------------------------------------------------------
    def canonical(self, arch: Arch) -> Arch:
        """The canonical form of ``arch`` (cached; ``arch`` itself without a mapping).

        Raises:
            ConfigError: the mapping failed, returned no arch of the space, or is not
                idempotent (the canonical form of a canonical arch must be itself).
        """
        if self._canonical_fn is None:
            return arch
        out = self._canon_cache.get(arch)
        if out is None:
            out = self._map(arch)
            if self._map(out) != out:
                raise ConfigError(
                    f"canonical() is not idempotent: {dict(arch)} -> {dict(out)} -> "
                    f"{dict(self._map(out))}; the canonical form of a canonical arch must be itself"
                )
            self._canon_cache[arch] = out
            self._canon_cache.setdefault(out, out)
        return out

    def _map(self, arch: Arch) -> Arch:
        try:
            return self.space.validate(self._canonical_fn(arch))
        except Exception as exc:
            raise ConfigError(
                f"canonical({dict(arch)}) must return an arch of the search space "
                f"({self.space!r}); it gave {type(exc).__name__}: {exc}"
            ) from exc

    def is_known(self, arch: Arch) -> bool:
        """True when ``arch`` or an equivalent arch was evaluated, is in flight or was rejected."""
        return self.canonical(arch) in self._known

    # ---- constraints and cheap objectives -----------------------------------------------
    def cheap(self, arch: Arch) -> dict[str, float]:
        if arch not in self._cheap_cache:
            self._cheap_cache[arch] = self.evaluator.cheap(arch) if self._cheap_names else {}
        return self._cheap_cache[arch]

    def is_feasible(self, arch: Arch) -> bool:
        if arch not in self._feasible_cache:
            ok = all(bool(p(arch)) for p in self._predicates)
            if ok and self._pre_bounds:
                values = self.cheap(arch)
                ok = all(self._signs[k] * (values[k] - b) <= 0 for k, b in self._pre_bounds.items())
            self._feasible_cache[arch] = ok
        return self._feasible_cache[arch]

    def random_unseen(self, n: int) -> list[Arch]:
        """Up to ``n`` canonical archs drawn as the space samples them (uniform over archs, then
        mapped to their canonical form), feasible, unknown and pairwise not equivalent."""
        out: list[Arch] = []
        taken: set[Arch] = set()
        for _ in range(200 * n):
            if len(out) == n:
                return out
            arch = self.canonical(self.space.sample(self._rng))
            if arch not in self._known and arch not in taken and self.is_feasible(arch):
                out.append(arch)
                taken.add(arch)
        if self.space.size <= ENUMERABLE:
            rest = [
                a
                for a in dict.fromkeys(self.canonical(a) for a in self.space)
                if a not in self._known and a not in taken and self.is_feasible(a)
            ]
            picks = self._rng.permutation(len(rest))[: n - len(out)]
            out += [rest[i] for i in sorted(picks)]
        return out

    # ---- Engine ----------------------------------------------------------------------------
    def finished(self) -> bool:
        return self._done >= self.budget or (self._exhausted and not self._pending)

    def progress(self) -> Progress:
        return Progress(self._done, self.budget, self._failed, unit="evaluation")

    def setup(self) -> None:
        for t in self._stale:  # left RUNNING by a process that died: never evaluated, so retried
            self.study._storage.set_trial_user_attr(
                t._trial_id,
                RECORD_KEY,
                {
                    "interrupted": True,
                    "error": "interrupted: the process running it stopped (crash or kill)",
                },
            )
            self.study.tell(t.number, state=TrialState.FAIL)
            arch = self._arch_of(t)
            if arch is not None and not self.is_known(arch):
                arch = self.canonical(arch)
                self._retry += [] if arch in self._retry else [arch]
        self._stale = []
        self._exhausted = False
        self.evaluator.start()
        self._executor = self._user_executor or cf.ThreadPoolExecutor(
            self.workers, thread_name_prefix="nasviz-eval", initializer=lower_thread_priority
        )

    def step(self) -> list[Event]:
        self._fill()
        if not self._pending:
            return []
        done, _ = cf.wait(list(self._pending), return_when=cf.FIRST_COMPLETED)
        events: list[Event] = []
        for future in sorted(done, key=lambda f: self._pending[f].number):
            events += self._record(future)
        return events

    def teardown(self, reason: str) -> None:
        try:
            for future in sorted(self._pending, key=lambda f: self._pending[f].number):
                future.exception()  # wait: an evaluation in flight is persisted, never lost
            for future in sorted(self._pending, key=lambda f: self._pending[f].number):
                self._record(future, check=False)
        finally:
            if self._executor is not None and self._user_executor is None:
                self._executor.shutdown(wait=True)
            self._executor = None
            self.evaluator.end()

    # ---- proposing -------------------------------------------------------------------------
    def _fill(self) -> None:
        slots = min(
            self.workers - len(self._pending), self.budget - self._done - len(self._pending)
        )
        rejects = 0
        while slots > 0:
            if self._retry:
                proposals = [Proposal(a) for a in self._retry[:slots]]
                del self._retry[:slots]
            elif rejects >= MAX_REJECTS:
                proposals = [Proposal(a) for a in self.random_unseen(slots)]
                if not proposals:
                    self._exhausted = True
                    return
            else:
                proposals = self.strategy.ask(slots)
                if not proposals:
                    if self._pending:
                        return  # the strategy waits for results
                    rejects = MAX_REJECTS
                    continue
            for p in proposals:
                arch = self.canonical(p.arch)
                if slots > 0 and arch not in self._known and self.is_feasible(arch):
                    self._launch(p, arch)
                    slots -= 1
                    rejects = 0
                else:
                    if slots <= 0:
                        why = "surplus"  # a strategy gave more than asked
                    elif arch in self._known:
                        why, rejects = "duplicate", rejects + 1
                    else:
                        why, rejects = "infeasible", rejects + 1
                        self._known.add(arch)
                    if p.trial is not None:
                        p.trial.set_user_attr(RECORD_KEY, {"skipped": why})
                        self.study.tell(p.trial, state=TrialState.PRUNED)

    def _launch(self, proposal: Proposal, arch: Arch) -> None:
        """Evaluates ``arch``, the canonical form of ``proposal.arch``."""
        if proposal.trial is None or arch != proposal.arch:
            # One storage write per new trial (Study.ask + suggest would be one per dimension).
            # A sampler's trial for a non-canonical arch gives way to a trial of its canonical
            # form carrying the sampler's attributes (e.g. NSGA-II's generation), which the
            # sampler then learns from; the sampler's own trial is pruned, not a result.
            system_attrs = (
                {}
                if proposal.trial is None
                else self.study._storage.get_trial_system_attrs(proposal.trial._trial_id)
            )
            template = create_trial(
                state=TrialState.RUNNING,
                params=dict(arch),
                distributions=self._dists,
                system_attrs=dict(system_attrs),
            )
            trial_id = self.study._storage.create_new_trial(
                self.study._study_id, template_trial=template
            )
            number = self.study._storage.get_trial_number_from_id(trial_id)
            if proposal.trial is not None:
                proposal.trial.set_user_attr(
                    RECORD_KEY, {"skipped": "equivalent", "evaluated_as": number}
                )
                self.study.tell(proposal.trial, state=TrialState.PRUNED)
        else:
            trial_id, number = proposal.trial._trial_id, proposal.trial.number
        self._known.add(arch)
        future = self._executor.submit(evaluate, self.evaluator, arch)
        self._pending[future] = _InFlight(number, trial_id, arch, proposal.trial is not None)

    # ---- recording -------------------------------------------------------------------------
    def _finish(self, flight: _InFlight, state: TrialState, values: list[float] | None) -> None:
        """Ends a trial: through ``study.tell`` when an Optuna sampler proposed it (the sampler
        learns in ``after_trial``), else with one storage write (the study's placeholder
        sampler never saw the trial; ``tell`` would only re-read and deep-copy it)."""
        if flight.sampled:
            self.study.tell(flight.number, values=values, state=state)
        else:
            self.study._storage.set_trial_state_values(flight.trial_id, state, values)

    def _record(self, future: cf.Future, check: bool = True) -> list[Event]:
        flight = self._pending.pop(future)
        trial_id, arch = flight.trial_id, flight.arch
        try:
            outcome = future.result()
        except Exception as exc:  # the executor itself failed (a worker died, pickling)
            outcome = Outcome(
                None,
                f"{type(exc).__name__}: {exc}",
                "".join(traceback.format_exception(exc)),
                0.0,
                "",
            )
        record: dict[str, Any] = {"duration": outcome.duration, "worker": outcome.worker}
        if outcome.extras:
            record["extras"] = outcome.extras
        if outcome.values is None:
            record.update(error=outcome.error, traceback=outcome.traceback)
        self.study._storage.set_trial_user_attr(trial_id, RECORD_KEY, record)
        if outcome.values is not None:
            values = [outcome.values[o.name] for o in self.objectives]
            if self._post_bounds:
                trial = optuna.Trial(self.study, trial_id)
                for k, b in self._post_bounds.items():
                    trial.set_constraint(k, self._signs[k] * (outcome.values[k] - b))
            self._finish(flight, TrialState.COMPLETE, values)
        else:
            self._finish(flight, TrialState.FAIL, None)
            if self._first_error is None:
                self._first_error = outcome
        self._count(
            outcome.values is not None, arch, values if outcome.values is not None else None
        )
        row = trial_row(self.study._storage.get_trial(trial_id), self.space, self.objectives)
        events = [Event("result", row)]
        events += self.strategy.tell(arch, outcome.values if row["feasible"] else None)
        if check and self._succeeded == 0 and self._failed >= min(FAIL_FAST, self.budget):
            first = self._first_error
            raise RunError(
                f"all {self._failed} evaluations failed (a search stops after {min(FAIL_FAST, self.budget)} "
                f"failures without a success); the first error was {first.error}\n{first.traceback}"
            )
        return events
