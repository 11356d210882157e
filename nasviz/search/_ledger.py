"""The ledger: what one search knows about its shared study, kept current by polling storage.

Many searches (threads, processes, machines) may work on one study. They coordinate through
the trials alone, with three rules that every Optuna storage makes safe, because each creates
a study's trials one at a time and numbers them in that order:

Claims
    To evaluate an arch a search first creates a RUNNING trial for it (its claim, with a lease,
    see :mod:`nasviz.search._lease`), then reads every trial numbered before its own. The claim
    *holds* the arch only if no earlier trial of that arch is RUNNING or a result; otherwise
    the search marks it PRUNED (``skipped: "duplicate"``) and never evaluates it. Two searches
    that pick one arch at once thus evaluate it once: the earlier claim wins.

Budget
    A claim also holds a unit of the budget only if fewer than ``budget`` holding trials
    (results and holding claims) come before it; otherwise it is PRUNED (``skipped:
    "budget"``). So any number of searches together evaluate exactly ``budget`` archs.

Dead claims
    A RUNNING trial whose lease shows its search is gone is *reaped*: marked FAIL with the
    user attribute ``nasviz:interrupted`` by whichever search notices first (the storage
    refuses to finish a trial twice, so exactly one succeeds). Its arch is then retried, once
    (``MAX_RETRIES``); an arch whose retry dies too is recorded as a failed evaluation.

Trials are read by kind (:func:`nasviz.search._storage.kind`): claims, results, interrupted
and skipped trials.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nasviz.search import _optuna
from nasviz.search._lease import LEASE_KEY, Owner, is_dead
from nasviz.search._storage import INTERRUPTED_KEY, RECORD_KEY, kind
from nasviz.space import Arch, SearchSpace

__all__ = ["MAX_RETRIES", "Claim", "Ledger", "reap"]

#: How many times an arch whose evaluation was interrupted (its process died) is retried.
MAX_RETRIES = 1


@dataclass
class _Arch:
    """One arch's trials: ``holders`` (RUNNING or result trial numbers, sorted) and how many
    of its evaluations were interrupted."""

    holders: list[int] = field(default_factory=list)
    interrupted: int = 0
    result: bool = False


@dataclass
class Claim:
    """A RUNNING trial of the study (ours or another search's)."""

    number: int
    trial_id: int
    arch: Arch
    lease: dict[str, Any] | None


class Ledger:
    """Archs, claims, results and budget use of one study as this search last read them.

    Args:
        study: the Optuna study.
        space: its search space (trials without a full arch of it are skipped).
        canonical: maps an arch to its canonical form.
        owner: this search's lease identity (its own claims are never judged dead).
        n_objectives: values per result.

    Contract: used by the search's run thread only (the engine), except :attr:`in_flight`.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        canonical: Callable[[Arch], Arch],
        owner: Owner,
        n_objectives: int,
    ):
        self.study = study
        self.storage = _optuna.storage_of(study)
        self.space = space
        self.canonical = canonical
        self.owner = owner
        self.n_objectives = n_objectives
        self.reader = _optuna.TrialReader(self.storage, _optuna.study_id(study))
        self.archs: dict[Arch, _Arch] = {}
        self.claims: dict[int, Claim] = {}  # trial id -> RUNNING trial
        self.results: list[int] = []  # numbers of result trials, sorted
        self.failed = 0
        self.history_archs: list[Arch] = []
        self.history_values: list[list[float]] = []
        self.retry: list[Arch] = []  # archs whose evaluation died, to evaluate again
        self.last_read: list[FrozenTrial] = []  # every trial the last poll read
        self._expected: dict[int, Arch] = {}  # our new trials' archs, not to check again

    # ---- reading the storage ----------------------------------------------------------------
    def poll(self, reap: bool, own: dict[int, FrozenTrial] | None = None) -> list[FrozenTrial]:
        """Reads new and changed trials (all of them in :attr:`last_read`); returns the
        results that appeared (any search's) and updates claims, budget use and the retry
        queue. With ``reap``, marks other searches' dead claims interrupted (a write: never
        while browsing). ``own``: trials we just created, as created (see
        :meth:`~nasviz.search._optuna.TrialReader.poll`)."""
        trials = self.reader.poll(set(self.claims), own)
        self.last_read = trials
        new_results = [t for t in trials if self._ingest(t)]
        if reap:
            self._reap()
        return new_results

    def expect(self, trial_id: int, arch: Arch) -> None:
        """Tells the ledger the (canonical) arch of a trial we just created: not checked again
        when it is read."""
        self._expected[trial_id] = arch

    def arch_of(self, trial: FrozenTrial) -> Arch | None:
        """The canonical arch of a trial (None when it holds no arch of the space)."""
        known = self._expected.pop(_optuna.trial_id(trial), None)
        if known is not None:
            return known
        if any(name not in trial.params for name in self.space.names):
            return None
        try:
            arch = self.space.validate({name: trial.params[name] for name in self.space.names})
        except ValueError:
            return None
        return self.canonical(arch)

    def _ingest(self, trial: FrozenTrial) -> bool:
        """Takes in one trial; True when it is a result not seen before."""
        tid = _optuna.trial_id(trial)
        what = kind(trial)
        if what == "claim":
            if tid not in self.claims:
                arch = self.arch_of(trial)
                if arch is not None:
                    self.claims[tid] = Claim(
                        trial.number, tid, arch, trial.system_attrs.get(LEASE_KEY)
                    )
                    bisect.insort(self._arch(arch).holders, trial.number)
                    if arch in self.retry:  # claimed again (by us or another search)
                        self.retry.remove(arch)
            else:
                self.claims[tid].lease = trial.system_attrs.get(LEASE_KEY)
            return False
        claim = self.claims.pop(tid, None)
        arch = claim.arch if claim is not None else self.arch_of(trial)
        if arch is None:
            return False
        entry = self._arch(arch)
        if claim is not None:
            entry.holders.remove(trial.number)
        if what == "interrupted":
            entry.interrupted += 1
            self._maybe_retry(arch, entry)
        elif what == "result":
            self._count(trial, arch, entry)
            return True
        return False

    def _arch(self, arch: Arch) -> _Arch:
        entry = self.archs.get(arch)
        if entry is None:
            entry = self.archs[arch] = _Arch()
        return entry

    def _count(self, trial: FrozenTrial, arch: Arch, entry: _Arch) -> None:
        bisect.insort(entry.holders, trial.number)
        entry.result = True
        bisect.insort(self.results, trial.number)
        if trial.state == TrialState.COMPLETE:
            self.history_archs.append(arch)
            self.history_values.append(list(trial.values))
        elif trial.state == TrialState.FAIL:
            self.failed += 1
        if arch in self.retry:
            self.retry.remove(arch)

    def _maybe_retry(self, arch: Arch, entry: _Arch) -> None:
        if not entry.holders and entry.interrupted <= MAX_RETRIES and arch not in self.retry:
            self.retry.append(arch)

    # ---- dead claims ----------------------------------------------------------------------
    def _reap(self) -> None:
        for tid, claim in list(self.claims.items()):
            if not is_dead(claim.lease, self.owner):
                continue
            entry = self._arch(claim.arch)
            final = entry.interrupted >= MAX_RETRIES
            if reap(self.storage, tid, final):
                entry.holders.remove(claim.number)
                del self.claims[tid]
                if final:  # now a failed result: counts against the budget
                    trial = self.storage.get_trial(tid)
                    self._count(trial, claim.arch, entry)
                else:
                    entry.interrupted += 1
                    self._maybe_retry(claim.arch, entry)
            # else another search reaped it, or it finished: the next poll shows which

    # ---- decisions -------------------------------------------------------------------------
    def knows(self, arch: Arch) -> bool:
        """True when ``arch`` (canonical) has a trial: evaluated, running or interrupted."""
        return arch in self.archs

    def holds(self, number: int, arch: Arch, budget: int) -> str:
        """Whether our claim ``number`` on ``arch`` may be evaluated: ``""`` (yes),
        ``"duplicate"`` (an earlier trial holds the arch) or ``"budget"`` (``budget`` holding
        trials come before it)."""
        if self.archs[arch].holders[0] != number:
            return "duplicate"
        before = bisect.bisect_left(self.results, number)
        before += sum(
            1
            for c in self.claims.values()
            if c.number < number and self.archs[c.arch].holders[0] == c.number
        )
        return "budget" if before >= budget else ""

    def release(self, trial_id: int) -> None:
        """Forgets our claim ``trial_id`` that was backed off (PRUNED)."""
        claim = self.claims.pop(trial_id)
        self.archs[claim.arch].holders.remove(claim.number)

    def finish(self, trial: FrozenTrial) -> None:
        """Takes in our own claim ``trial`` after we finished it (state written)."""
        self._ingest(trial)

    @property
    def done(self) -> int:
        """Results in the study (evaluations that count against the budget)."""
        return len(self.results)

    @property
    def live(self) -> int:
        """Claims that hold their arch (evaluations in flight, any search)."""
        return sum(1 for c in self.claims.values() if self.archs[c.arch].holders[0] == c.number)

    def history(self) -> tuple[list[Arch], np.ndarray]:
        values = np.array(self.history_values, dtype=np.float64)
        return list(self.history_archs), values.reshape(len(self.history_values), self.n_objectives)


def reap(storage: Any, trial_id: int, final: bool) -> bool:
    """Marks a dead claim FAIL (interrupted; ``final``: as a failed evaluation instead, its
    arch having died before); True when this call did it, False when the trial had already
    finished (another search reaped it, or its owner finished after all)."""
    try:
        if final:
            storage.set_trial_user_attr(
                trial_id,
                RECORD_KEY,
                {
                    "error": "interrupted twice: the processes evaluating this arch died "
                    "(killed, crashed or cut off) both times, so it is not retried again",
                    "traceback": "",
                },
            )
        else:
            storage.set_trial_user_attr(
                trial_id,
                INTERRUPTED_KEY,
                {
                    "error": "interrupted: the process evaluating it stopped (crash, kill or cut off)"
                },
            )
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
        return False
    return True
