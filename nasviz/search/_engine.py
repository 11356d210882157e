"""The search as a stepwise :class:`~nasviz.runner.Engine`: propose, claim, evaluate, persist,
report.

One ``step`` reads what other searches on the study did (:class:`~nasviz.search._ledger.Ledger`),
fills the executor up to ``workers`` evaluations in flight, each first claimed in the storage,
waits until one finishes (or a poll interval passes, so other searches' results show up live),
writes each finished one to the storage and only then returns its ``"result"`` event. Stop
and pause therefore take effect within one evaluation; evaluations still in flight when a run
ends are waited for and persisted in ``teardown``.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nasviz.errors import ConfigError, NasvizWarning, RunError
from nasviz.objectives import Objective
from nasviz.runner import Engine, Event, Progress, lower_thread_priority
from nasviz.search import _optuna
from nasviz.search._evaluate import Outcome, evaluate
from nasviz.search._fidelity import Reporter, Scheduler, reports_of
from nasviz.search._lease import LEASE_KEY, Heartbeat, Owner
from nasviz.search._ledger import Ledger
from nasviz.search._storage import RECORD_KEY, distributions, trial_row
from nasviz.search._strategy import Proposal, SearchContext, Strategy
from nasviz.space import Arch, SearchSpace, as_rng

__all__ = ["HEARTBEAT_S", "POLL_S", "SearchEngine"]

#: A search with no successful evaluation stops (status "failed") after this many failures.
FAIL_FAST = 10
#: Consecutive rejected proposals (duplicates, infeasible) before random unseen archs fill in.
MAX_REJECTS = 64
#: Spaces up to this size are enumerated when random draws stop finding unseen archs.
ENUMERABLE = 200_000
#: Seconds between reads of the study while evaluations run (other searches' results).
POLL_S = 0.25
#: Seconds of the first wait for other searches' evaluations when none of ours runs (doubling up
#: to POLL_S while the wait goes on).
WAIT_S = 0.01
#: Default seconds between lease renewals of the evaluations in flight.
HEARTBEAT_S = 10.0


@dataclass(frozen=True)
class _InFlight:
    """An evaluation submitted to the executor: its trial and whether a sampler proposed it."""

    number: int
    trial_id: int
    arch: Arch
    sampled: bool
    reporter: Reporter | None
    lease: dict[str, Any]


class SearchEngine(Engine):
    """Runs a search on an Optuna study, alone or with other searches on the same study.

    Args:
        study: the study (created or loaded by the caller; its user attrs hold the space).
        space, objectives: what is searched and measured.
        strategy: proposes archs (bound here).
        evaluator: picklable ``evaluator(arch) -> (values, extras)`` (called from executor
            workers, concurrently) with ``cheap(arch, names)``, ``cheap_names()``, ``start()``
            / ``end()`` (called by the run thread around each run's evaluations) and
            ``reports`` (True: call it as ``evaluator(arch, report)``).
        budget: evaluations to reach, counting those already in the study (any search's).
        executor: where evaluations run; None: the run's own thread with one worker, else a
            thread pool per start.
        workers: evaluations in flight at once (this search's).
        seed: seed of the strategy's generator.
        bounds: objective name -> bound (see :class:`~nasviz.search._strategy.SearchContext`).
        predicates: ``predicate(arch) -> bool`` constraints checked before evaluating.
        canonical: ``canonical(arch) -> arch``, the representative of the archs that compute
            the same subnet (e.g. ``ElasticMLP.canonical``), or None (every arch is its own).
            Only canonical archs are evaluated and stored, and an arch whose canonical form is
            known is never evaluated.
        scheduler: early stopping for functions that report (None: none).
        heartbeat: seconds between lease renewals (see :mod:`nasviz.search._lease`).
        net: the supernet objectives and features are measured on (None for a function).
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
        scheduler: Scheduler | None = None,
        heartbeat: float = HEARTBEAT_S,
        net: Any = None,
    ):
        self.study = study
        self.storage = _optuna.storage_of(study)
        self._study_id = _optuna.study_id(study)
        self.space = space
        self.objectives = objectives
        self.strategy = strategy
        self.evaluator = evaluator
        self.budget = budget
        self.workers = workers
        self.scheduler = scheduler
        self._net = net
        self._user_executor = executor
        self._executor: cf.Executor | None = None
        self._bounds = bounds
        self._predicates = predicates
        self._signs = {o.name: o.sign for o in objectives}
        self._dists = distributions(space)
        self._rng = as_rng(seed)
        self._canonical_fn = canonical
        self._canon_cache: dict[Arch, Arch] = {}
        self._cheap_names = _working_cheap(evaluator, space)
        self._pre_bounds = {k: v for k, v in bounds.items() if k in self._cheap_names}
        self._post_bounds = {k: v for k, v in bounds.items() if k not in self._cheap_names}
        self._rejected: set[Arch] = set()  # canonical archs found infeasible (never stored)
        self._pending: dict[cf.Future, _InFlight] = {}
        self._leased: set[int] = set()  # trial ids in flight (read by the heartbeat thread)
        self._leased_lock = threading.Lock()
        self._heartbeat: Heartbeat | None = None
        self._cheap_cache: dict[Arch, dict[str, float]] = {}
        self._feasible_cache: dict[Arch, bool] = {}
        self._ok = self._bad = 0  # this search's own evaluations (fail fast)
        self._first_error: Outcome | None = None
        self._exhausted = False
        self._polled = 0.0
        self._waited_s = 0.0  # the last wait for other searches (0: not waiting)
        self._own: dict[int, FrozenTrial] = {}  # trials just created, as created
        self.keep: Any = None  # KeptModels: where returned models go (set by the Search)
        self.owner = Owner(heartbeat)
        self.ledger = Ledger(study, space, self.canonical, self.owner, len(objectives))
        self._observe(self.ledger.poll(reap=False))
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
                history=self.ledger.history,
                random_unseen=self.random_unseen,
                canonical=self.canonical,
                equivalences=canonical is not None,
                cheap_names=sorted(self._cheap_names),
                measure=lambda objective, arch: objective(self._net, arch),
            )
        )
        sampler = strategy.sampler()
        study.sampler = sampler if sampler is not None else optuna.samplers.RandomSampler(seed)
        if scheduler is not None:
            scheduler.bind(objectives, study)
            for trial in study.get_trials(deepcopy=False):  # rungs from every stored report
                arch = self.ledger.arch_of(trial)
                if arch is not None:
                    scheduler.observe(arch, trial.number, reports_of(trial))

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
        """True when ``arch`` or an equivalent arch was evaluated, is in flight (any search's),
        was interrupted or was rejected."""
        arch = self.canonical(arch)
        return self.ledger.knows(arch) or arch in self._rejected

    # ---- constraints and cheap objectives -----------------------------------------------
    def cheap(self, arch: Arch) -> dict[str, float]:
        if arch not in self._cheap_cache:
            self._cheap_cache[arch] = (
                self.evaluator.cheap(arch, self._cheap_names) if self._cheap_names else {}
            )
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
            if not self.is_known(arch) and arch not in taken and self.is_feasible(arch):
                out.append(arch)
                taken.add(arch)
        if self.space.size <= ENUMERABLE:
            rest = [
                a
                for a in dict.fromkeys(self.canonical(a) for a in self.space)
                if not self.is_known(a) and a not in taken and self.is_feasible(a)
            ]
            picks = self._rng.permutation(len(rest))[: n - len(out)]
            out += [rest[i] for i in sorted(picks)]
        return out

    # ---- Engine ----------------------------------------------------------------------------
    def finished(self) -> bool:
        return self.ledger.done >= self.budget or (
            self._exhausted
            and not self._pending
            and not self.ledger.claims
            and not self.ledger.retry
        )

    def progress(self) -> Progress:
        return Progress(self.ledger.done, self.budget, self.ledger.failed, unit="evaluation")

    def setup(self) -> None:
        self._exhausted = False
        self.evaluator.start()
        if self._user_executor is not None:
            self._executor = self._user_executor
        elif self.workers == 1:  # one at a time: in the run's own thread, no hand-off
            self._executor = _Inline()
        else:
            self._executor = cf.ThreadPoolExecutor(
                self.workers, thread_name_prefix="nasviz-eval", initializer=lower_thread_priority
            )
        self._heartbeat = Heartbeat(self.owner, self._in_flight, self._renew)
        self.owner.running(True)

    def step(self) -> list[Event]:
        events: list[Event] = []
        if time.monotonic() - self._polled >= POLL_S:  # claiming polls too: no need twice
            events = self._news(self._poll(reap=True))
        events += self._fill()
        if not self._pending:
            if not self.finished():  # other searches hold the rest of the budget: wait
                self._wait_for_others()
            return events
        self._waited_s = 0.0
        done, _ = cf.wait(list(self._pending), timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
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
            self.owner.running(False)
            if self._heartbeat is not None:
                self._heartbeat.stop()
                self._heartbeat = None
            if self._executor is not None and self._user_executor is None:
                self._executor.shutdown(wait=True)
            self._executor = None
            self.evaluator.end()

    # ---- other searches --------------------------------------------------------------------
    def _wait_for_others(self) -> None:
        """Sleeps before the next step reads the study again: briefly at first, then twice as
        long each time up to :data:`POLL_S`. A run that waits for the last evaluations of
        other searches ends right after them (a fixed POLL_S sleep ended two shared workers
        0.24 s after their last result, 15% of a 1.5 s run), and a long wait still reads
        the study no more often than a running search does."""
        self._waited_s = min(max(2 * self._waited_s, WAIT_S), POLL_S)
        time.sleep(self._waited_s)
        self._polled = 0.0  # read right away in the next step

    def _poll(self, reap: bool) -> list[optuna.trial.FrozenTrial]:
        self._polled = time.monotonic()
        own, self._own = self._own, {}
        return self.ledger.poll(reap=reap, own=own)

    def _news(self, results: list[optuna.trial.FrozenTrial]) -> list[Event]:
        """Other searches' new results (from a poll) as events; the strategy learns them."""
        events: list[Event] = []
        for trial in self._observe(results):
            row = trial_row(trial, self.space, self.objectives)
            events.append(Event("result", row))
            ok = trial.state == TrialState.COMPLETE and row["feasible"]
            values = dict(zip(self._signs, trial.values, strict=True)) if ok else None
            events += self.strategy.tell(self.ledger.arch_of(trial), values)
        return events

    def _observe(self, results: list[optuna.trial.FrozenTrial]) -> list:
        """Feeds the scheduler every read trial's reports; returns ``results``."""
        if self.scheduler is not None:
            for trial in self.ledger.last_read:
                arch = self.ledger.arch_of(trial)
                if arch is not None:
                    self.scheduler.observe(arch, trial.number, reports_of(trial))
        return results

    def _in_flight(self) -> list[int]:
        with self._leased_lock:
            return list(self._leased)

    def _renew(self, trial_id: int, lease: dict[str, Any]) -> None:
        self.storage.set_trial_system_attr(trial_id, LEASE_KEY, lease)

    # ---- proposing -------------------------------------------------------------------------
    def _proposals(self, slots: int) -> list[tuple[Proposal, Arch]]:
        """Up to ``slots`` (proposal, canonical arch) pairs to claim, archs to retry first;
        sets ``_exhausted`` when nothing is left to propose."""
        chosen = [(Proposal(a), a) for a in self.ledger.retry[:slots]]
        picked = {a for _, a in chosen}
        rejects = 0
        while len(chosen) < slots:
            want = slots - len(chosen)
            if rejects >= MAX_REJECTS:
                proposals = [Proposal(a) for a in self.random_unseen(want) if a not in picked]
                if not proposals:
                    self._exhausted = not chosen and not self._pending
                    break
            else:
                proposals = self.strategy.ask(want)
                if not proposals:
                    if self._pending or chosen:
                        break  # the strategy waits for results
                    rejects = MAX_REJECTS
                    continue
            for p in proposals:
                arch = self.canonical(p.arch)
                fresh = arch not in picked and not self.is_known(arch)
                if len(chosen) < slots and fresh and self.is_feasible(arch):
                    chosen.append((p, arch))
                    picked.add(arch)
                    rejects = 0
                    continue
                if len(chosen) >= slots:
                    why = "surplus"  # a strategy gave more than asked
                elif not fresh:
                    why, rejects = "duplicate", rejects + 1
                else:
                    why, rejects = "infeasible", rejects + 1
                    self._rejected.add(arch)
                if p.trial is not None:
                    self._skip(_optuna.trial_id(p.trial), {"skipped": why})
        return chosen

    def _fill(self) -> list[Event]:
        """Claims and submits evaluations up to ``workers`` in flight; returns the events of
        other searches' results read meanwhile."""
        free = self.budget - self.ledger.done - self.ledger.live
        slots = min(self.workers - len(self._pending), free)
        if slots <= 0:
            return []
        claims = [self._claim(p, arch) for p, arch in self._proposals(slots)]
        if not claims:
            return []
        events = self._news(self._poll(reap=False))  # every trial numbered before ours
        for trial_id, arch, sampled, lease in claims:
            number = self.ledger.claims[trial_id].number
            verdict = self.ledger.holds(number, arch, self.budget)
            if verdict:
                holder = self.ledger.archs[arch].holders[0]
                self.ledger.release(trial_id)
                record = {"skipped": verdict}
                if verdict == "duplicate":
                    record["evaluated_as"] = holder
                self._skip(trial_id, record)
                continue
            reporter = None
            if getattr(self.evaluator, "reports", False):
                reporter = Reporter(
                    self.storage, trial_id, number, arch, self.objectives, self.scheduler
                )
            with self._leased_lock:
                self._leased.add(trial_id)
            future = self._executor.submit(evaluate, self.evaluator, arch, reporter)
            self._pending[future] = _InFlight(number, trial_id, arch, sampled, reporter, lease)
        return events

    def _claim(self, proposal: Proposal, arch: Arch) -> tuple[int, Arch, bool, dict[str, Any]]:
        """Creates the RUNNING trial (with its lease) that claims ``arch``; returns its storage
        id, the arch, whether a sampler proposed it, and the lease."""
        lease = self.owner.lease()
        if proposal.trial is not None and arch == proposal.arch:
            trial_id = _optuna.trial_id(proposal.trial)  # the sampler's own trial
            self.storage.set_trial_system_attr(trial_id, LEASE_KEY, lease)
            return trial_id, arch, True, lease
        # One storage write per new trial (Study.ask + suggest would be one per dimension).
        # A sampler's trial for a non-canonical arch gives way to a trial of its canonical
        # form carrying the sampler's attributes (e.g. NSGA-II's generation), which the
        # sampler then learns from; the sampler's own trial is pruned, not a result.
        system_attrs = (
            {}
            if proposal.trial is None
            else self.storage.get_trial_system_attrs(_optuna.trial_id(proposal.trial))
        )
        template = FrozenTrial(  # arch and distributions are valid by construction
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            values=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params=dict(arch),
            distributions=dict(self._dists),
            user_attrs={},
            system_attrs={**system_attrs, LEASE_KEY: lease},
            intermediate_values={},
            trial_id=-1,
        )
        trial_id = _optuna.create_trial(self.storage, self._study_id, template)
        self.ledger.expect(trial_id, arch)
        self._own[trial_id] = template
        if proposal.trial is not None:
            number = self.storage.get_trial_number_from_id(trial_id)
            self._skip(
                _optuna.trial_id(proposal.trial), {"skipped": "equivalent", "evaluated_as": number}
            )
        return trial_id, arch, proposal.trial is not None, lease

    def _skip(self, trial_id: int, record: dict[str, Any]) -> None:
        """Ends a trial that is not evaluated (PRUNED, with why in its record)."""
        self.storage.set_trial_user_attr(trial_id, RECORD_KEY, record)
        self.storage.set_trial_state_values(trial_id, TrialState.PRUNED)

    # ---- recording -------------------------------------------------------------------------
    def _finish(
        self,
        flight: _InFlight,
        record: dict[str, Any],
        constraints: dict[str, float],
        state: TrialState,
        values: list[float] | None,
    ) -> None:
        """Writes a trial's record, constraints and final state (one journal append); a
        sampler that proposed it learns first, as ``study.tell`` would have it (without its
        log line per trial)."""
        if flight.sampled:
            trial = self.storage.get_trial(flight.trial_id)
            self.study.sampler.after_trial(self.study, trial, state, values)
        _optuna.finish_trial(
            self.storage, flight.trial_id, {RECORD_KEY: record}, constraints, state, values
        )

    def _outcome(self, future: cf.Future) -> Outcome:
        try:
            return future.result()
        except Exception as exc:  # the executor itself failed (a worker died, pickling)
            return Outcome(
                None,
                f"{type(exc).__name__}: {exc}",
                "".join(traceback.format_exception(exc)),
                0.0,
                "",
            )

    def _record(self, future: cf.Future, check: bool = True) -> list[Event]:
        flight = self._pending.pop(future)
        with self._leased_lock:
            self._leased.discard(flight.trial_id)
        outcome = self._outcome(future)
        record: dict[str, Any] = {"duration": outcome.duration, "worker": outcome.worker}
        if outcome.extras:
            record["extras"] = outcome.extras
        reporter = flight.reporter
        if reporter is not None and reporter.step is not None:
            record.update(step=reporter.step, rung=reporter.rung)
        values = None
        if outcome.pruned:
            state = TrialState.PRUNED
            record.update(pruned_at=reporter.step, values=reporter.values, error=outcome.error)
        elif outcome.values is not None:
            state = TrialState.COMPLETE
            values = [outcome.values[o.name] for o in self.objectives]
        else:
            state = TrialState.FAIL
            record.update(error=outcome.error, traceback=outcome.traceback)
        constraints = {}
        if values is not None:
            for k, b in self._post_bounds.items():
                constraints[f"{_optuna.CONSTRAINTS_PREFIX}:{k}"] = self._signs[k] * (
                    outcome.values[k] - b
                )
        try:
            self._finish(flight, record, constraints, state, values)
        except optuna.exceptions.UpdateFinishedTrialError:
            return self._taken_over(flight)
        trial = FrozenTrial(  # as stored, without reading it back
            number=flight.number,
            state=state,
            value=None,
            values=values,
            datetime_start=None,
            datetime_complete=None,
            params=dict(flight.arch),
            distributions=self._dists,
            user_attrs={RECORD_KEY: record},
            system_attrs={LEASE_KEY: flight.lease, **constraints},
            intermediate_values={},
            trial_id=flight.trial_id,
        )
        self.ledger.finish(trial)
        if state == TrialState.COMPLETE and self.keep is not None and outcome.model is not None:
            try:
                self.keep.save(flight.number, outcome.model)
            except Exception as exc:  # the result is stored; only its model is missing
                warnings.warn(
                    f"trial {flight.number}'s model could not be kept in {self.keep.folder} "
                    f"({type(exc).__name__}: {exc}); its result is recorded",
                    NasvizWarning,
                    stacklevel=2,
                )
        if state == TrialState.FAIL:
            self._bad += 1
            self._first_error = self._first_error or outcome
        elif state == TrialState.COMPLETE:
            self._ok += 1
        row = trial_row(trial, self.space, self.objectives)
        events = [Event("result", row)]
        feasible = state == TrialState.COMPLETE and row["feasible"]
        events += self.strategy.tell(flight.arch, outcome.values if feasible else None)
        limit = min(FAIL_FAST, self.budget)
        if check and self._ok == 0 and self._bad >= limit:
            first = self._first_error
            raise RunError(
                f"all {self._bad} evaluations failed (a search stops after {limit} failures "
                f"without a success); the first error was {first.error}\n{first.traceback}"
            )
        return events

    def _taken_over(self, flight: _InFlight) -> list[Event]:
        """Our trial was declared dead by another search (this process stopped renewing its
        lease for longer than the lease, e.g. it was suspended); that search retries the arch,
        so this result is dropped rather than evaluated twice."""
        warnings.warn(
            f"trial {flight.number} ({dict(flight.arch)}) was taken over by another search: this "
            f"process did not renew its lease for over {self.owner.heartbeat * 3:g} s (was it "
            "suspended?). Its arch is evaluated again there; this result is not recorded",
            NasvizWarning,
            stacklevel=2,
        )
        return []


class _Inline(cf.Executor):
    """Runs each task at once in the submitting thread (the run's thread): a search with one
    worker and no executor evaluates there, without a hand-off to another thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _working_cheap(evaluator: Any, space: SearchSpace) -> set[str]:
    """The declared cheap objectives that compute on their own (probed on the smallest arch);
    each that fails is reported with a NasvizWarning naming it and its error, and is then
    measured with the evaluation instead (a bound on it is checked after evaluating)."""
    names = set(evaluator.cheap_names())
    if not names:
        return names
    probe = space.smallest()
    working = set()
    for name in sorted(names):
        try:
            value = evaluator.cheap(probe, {name})[name]
            if not np.isfinite(value):
                raise ValueError(f"it came out {value}")
        except Exception as exc:
            warnings.warn(
                f"cheap objective {name!r} could not be computed on its own (on "
                f"{dict(probe)}: {type(exc).__name__}: {exc}); it is measured with each "
                "evaluation instead, and the predictor strategy predicts it",
                NasvizWarning,
                stacklevel=4,
            )
            continue
        working.add(name)
    return working
