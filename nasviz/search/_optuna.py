"""Every use of Optuna's private API in nasviz, in one module.

nasviz keeps its results in plain Optuna studies and reads them through Optuna's public API
wherever that API is fast enough. A few things need Optuna's internals; they live here, so an
Optuna upgrade is checked in one place:

    * the study id and storage of a :class:`optuna.Study` and the storage id of a trial
      (``Study._study_id``, ``Study._storage``, ``FrozenTrial._trial_id``), which the
      storage's public methods take;
    * the system attributes that hold a study's metric names (what ``set_metric_names``
      writes, without its experimental warning) and a trial's constraints (what
      ``Trial.set_constraint`` writes, without reading the whole trial first);
    * :func:`create_trial`: a trial from a template, without the in-memory storage's deep
      copy of it, and in one transaction of plain inserts in an RDB (Optuna's models, as
      ``RDBStorage`` writes them); :func:`finish_trial`: a trial's attributes and final state
      in one journal append (Optuna's journal format, written as ``JournalStorage`` writes
      it) or one RDB transaction;
    * :class:`TrialReader`: the trials created or changed since the last read, in time
      independent of the study's size. Public ``get_all_trials`` returns every trial on every
      call, which makes a search slower with every trial; the reader uses the storage's own
      incremental paths instead (the journal's replay state, the in-memory lists, and the RDB
      storage's ``_get_trials(trial_id_greater_than=...)`` that Optuna's cache uses), and
      falls back to ``get_all_trials`` for any other storage.

Tested with optuna 5.0.0 (:data:`TESTED`); ``tests/search/test_search_optuna.py`` checks
that these writes read back as Optuna's own calls' on each storage kind (memory, journal,
SQLite, PostgreSQL).
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import distribution_to_json
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.storages.journal._storage import JournalOperation as Op
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.study.study import _SYSTEM_ATTR_METRIC_NAMES
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

__all__ = [
    "CONSTRAINTS_PREFIX",
    "METRIC_NAMES_KEY",
    "TESTED",
    "TrialReader",
    "backend",
    "create_trial",
    "finish_trial",
    "storage_of",
    "study_id",
    "trial_id",
]

#: Optuna versions this module was tested with.
TESTED = ("5.0.0",)

#: The study system attribute holding the objectives' names (optuna-dashboard and
#: ``plot_pareto_front`` read it).
METRIC_NAMES_KEY = _SYSTEM_ATTR_METRIC_NAMES
#: A trial's constraint ``name`` is its system attribute ``f"{CONSTRAINTS_PREFIX}:{name}"``
#: (what ``Trial.set_constraint`` writes, without its extra read of the trial).
CONSTRAINTS_PREFIX = _CONSTRAINTS_KEY


def study_id(study: optuna.Study) -> int:
    """The storage's id of ``study``."""
    return study._study_id


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage ``study`` reads and writes (Optuna may wrap an RDB storage in a cache)."""
    return study._storage


def trial_id(trial: FrozenTrial | optuna.Trial) -> int:
    """The storage's id of a trial (unique in the storage; ``number`` is unique in a study)."""
    return trial._trial_id


def backend(storage: BaseStorage) -> BaseStorage:
    """The storage behind Optuna's cache wrapper (itself when it is not wrapped)."""
    return storage._backend if isinstance(storage, _CachedStorage) else storage


def create_trial(storage: BaseStorage, study: int, template: FrozenTrial) -> int:
    """``storage.create_new_trial(study, template)`` for a RUNNING template with params and
    system attributes. In memory without Optuna's deep copy of the template (the caller hands
    over a fresh one and never touches it again; distributions are never modified); in
    PostgreSQL and SQLite in one transaction of four statements (Optuna's checks each param
    against the study's earlier distributions, two queries per param; nasviz's are fixed per
    study)."""
    store = backend(storage)
    if isinstance(store, RDBStorage) and _one_statement_insert(store):
        return _rdb_create(store, study, template)
    if not isinstance(store, InMemoryStorage):
        created = storage.create_new_trial(study, template_trial=template)  # (copies template)
        template._trial_id = created  # as the fast paths do: the caller reads them from it
        template.number = storage.get_trial_number_from_id(created)
        return created
    with store._lock:
        store._check_study_id(study)
        trial_id = store._max_trial_id + 1
        store._max_trial_id += 1
        template.number = len(store._studies[study].trials)
        template._trial_id = trial_id
        store._trial_id_to_study_id_and_number[trial_id] = (study, template.number)
        store._studies[study].trials.append(template)
        store._update_cache(trial_id, study)
    return trial_id


#: Databases whose INSERT can read its own table in a subquery (MySQL cannot: its trials are
#: created by Optuna's own code, as are those of an SQLite older than 3.35, without RETURNING).
_ONE_STATEMENT_INSERT = ("postgresql", "sqlite")


def _one_statement_insert(store: RDBStorage) -> bool:
    dialect = store.engine.dialect
    return dialect.name in _ONE_STATEMENT_INSERT and bool(dialect.insert_returning)


#: The states a trial can be finished from (Optuna's ``check_trial_is_updatable``).
_UPDATABLE = [s for s in TrialState if not s.is_finished()]


def _rdb_session(store: RDBStorage):
    return _create_scoped_session(store.scoped_session)


def _utc(moment: datetime | None) -> datetime | None:
    """A datetime as Optuna's RDB stores it: naive UTC (naive input is local time)."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def _of_study(study: int):
    """``trials.study_id == study``, written so that no index serves it: a database then reads
    a study's trials by id range (its primary key), the trials created since the id it starts
    from, whatever its statistics say. Through the study_id index instead (what PostgreSQL's
    planner takes while a fresh table has no statistics yet, its first minute) each of these
    look-ups read every trial of the study: per-trial cost grew with the study."""
    return models.TrialModel.__table__.c.study_id + 0 == study


def _next_number(study: int):
    """The number of a trial inserted now into ``study``: one more than the number of the
    study's latest trial, or, when that one has no number, the count of the study's trials,
    as Optuna counts them (0 for the first). A scalar subquery of the insert itself: evaluated
    under the study's row lock (an RDB with row locks) or the write lock that the insert holds
    (SQLite, which has none), so no other creation can come in between; read in a statement
    before the insert, two SQLite processes could both take one number (a shared study then
    lost a row)."""
    trials = models.TrialModel.__table__
    latest = (
        select(trials.c.number + 1)
        .where(_of_study(study))
        .order_by(trials.c.trial_id.desc())
        .limit(1)
        .scalar_subquery()
    )
    count = select(func.count()).select_from(trials).where(_of_study(study)).scalar_subquery()
    return func.coalesce(latest, count)


def _rdb_create(store: RDBStorage, study: int, template: FrozenTrial) -> int:
    """Optuna's trial creation as plain SQL statements (no ORM unit of work: at a few
    milliseconds of Python per trial it cost more than the database did)."""
    trials = models.TrialModel.__table__
    for attempt in range(5):  # as Optuna: concurrent creations may deadlock; retry
        try:
            with _rdb_session(store) as session:
                # the study's row lock orders trial numbers, as in Optuna's own creation
                studies = models.StudyModel.__table__
                locked = session.execute(
                    select(studies.c.study_id).where(studies.c.study_id == study).with_for_update()
                ).first()
                if locked is None:
                    raise KeyError(models.NOT_FOUND_MSG)
                trial_id, number = session.execute(
                    insert(trials)
                    .values(
                        study_id=study,
                        number=_next_number(study),
                        state=TrialState.RUNNING,
                        datetime_start=_utc(template.datetime_start),
                    )
                    .returning(trials.c.trial_id, trials.c.number)
                ).one()
                params = [
                    {
                        "trial_id": trial_id,
                        "param_name": name,
                        "param_value": template.distributions[name].to_internal_repr(value),
                        "distribution_json": distribution_to_json(template.distributions[name]),
                    }
                    for name, value in template.params.items()
                ]
                if params:
                    session.execute(insert(models.TrialParamModel.__table__), params)
                _insert_attrs(
                    session, models.TrialSystemAttributeModel, trial_id, template.system_attrs
                )
                template.number, template._trial_id = number, trial_id
                return trial_id
        except StorageInternalError:
            if attempt == 4:
                raise
            time.sleep(random.random())
    raise AssertionError("unreachable")


def _insert_attrs(session: Any, model: Any, trial_id: int, attrs: dict[str, Any]) -> None:
    if attrs:
        rows = [
            {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
        ]
        session.execute(insert(model.__table__), rows)


def finish_trial(
    storage: BaseStorage,
    trial_id: int,
    user_attrs: dict[str, Any],
    system_attrs: dict[str, Any],
    state: TrialState,
    values: list[float] | None,
) -> None:
    """Sets a RUNNING trial's attributes, then its final state and values: what the storage's
    ``set_trial_user_attr`` / ``set_trial_system_attr`` / ``set_trial_state_values`` do one by
    one, in one append (one lock, one write, one read back) for a journal and in one
    transaction for an RDB.

    The keys must be new to the trial and it must have no values yet (true of a claim that
    nasviz finishes), so an RDB inserts them without looking first.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial had already finished (nothing
            of this call took effect on it).
    """
    store = backend(storage)
    if isinstance(store, RDBStorage) and _rdb_finish(
        store, trial_id, user_attrs, system_attrs, state, values
    ):
        return
    if not isinstance(store, JournalStorage):  # (an RDB whose fast path found a key taken)
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for key, value in system_attrs.items():
            storage.set_trial_system_attr(trial_id, key, value)
        storage.set_trial_state_values(trial_id, state, values)
        return
    now = datetime.now(tz=UTC).isoformat(timespec="microseconds")
    with store._thread_lock:
        worker = store._replay_result.worker_id
        logs = [
            {"op_code": Op.SET_TRIAL_USER_ATTR, "worker_id": worker, "trial_id": trial_id,
             "user_attr": {k: v}}
            for k, v in user_attrs.items()
        ] + [
            {"op_code": Op.SET_TRIAL_SYSTEM_ATTR, "worker_id": worker, "trial_id": trial_id,
             "system_attr": {k: v}}
            for k, v in system_attrs.items()
        ]  # fmt: skip
        logs.append(
            {"op_code": Op.SET_TRIAL_STATE_VALUES, "worker_id": worker, "trial_id": trial_id,
             "state": state, "values": values, "datetime_complete": now}
        )  # fmt: skip
        store._backend.append_logs(logs)
        refused = None
        while True:  # each refused log raises once as it is replayed: read them all
            try:
                store._sync_with_backend()
                break
            except UpdateFinishedTrialError as exc:
                refused = refused or exc
        if refused is not None:
            raise refused


def _rdb_finish(
    store: RDBStorage,
    trial_id: int,
    user_attrs: dict[str, Any],
    system_attrs: dict[str, Any],
    state: TrialState,
    values: list[float] | None,
) -> bool:
    """:func:`finish_trial` in one RDB transaction of plain inserts; False (nothing written)
    when a key was there already (another search wrote it meanwhile, e.g. while reaping the
    trial): the caller then takes Optuna's own path, which updates keys in place."""
    trials = models.TrialModel.__table__
    try:
        with _rdb_session(store) as session:
            # the state first: its row lock keeps a reaper out, its condition refuses a
            # finished trial (one statement instead of a locking read and then the update)
            done = session.execute(
                update(trials)
                .where(trials.c.trial_id == trial_id, trials.c.state.in_(_UPDATABLE))
                .values(state=state, datetime_complete=_utc(datetime.now()))
            )
            if done.rowcount != 1:
                row = session.execute(
                    select(trials.c.state).where(trials.c.trial_id == trial_id)
                ).first()
                if row is None:
                    raise KeyError(models.NOT_FOUND_MSG)
                store.check_trial_is_updatable(trial_id, row[0])  # raises: it has finished
            _insert_attrs(session, models.TrialUserAttributeModel, trial_id, user_attrs)
            _insert_attrs(session, models.TrialSystemAttributeModel, trial_id, system_attrs)
            rows = []
            for objective, value in enumerate(values or ()):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                rows.append(
                    {
                        "trial_id": trial_id,
                        "objective": objective,
                        "value": stored,
                        "value_type": kind,
                    }
                )
            if rows:
                session.execute(insert(models.TrialValueModel.__table__), rows)
    except IntegrityError:
        return False
    return True


class TrialReader:
    """Reads one study's trials incrementally: each :meth:`poll` returns the trials created
    since the previous poll plus the current state of the given unfinished ones.

    Contract: one reader per study and engine, called from one thread at a time. New trials
    come in creation order (trial number); a storage that creates a study's trials under a
    lock (all of Optuna's do) never shows a trial before the ones numbered below it.
    """

    def __init__(self, storage: BaseStorage, study: int):
        self.storage = storage
        self.study = study
        self._backend = backend(storage)
        self._cursor = 0  # trials consumed (journal, memory, generic) or last trial id (RDB)
        if isinstance(self._backend, RDBStorage):
            self._cursor = -1

    def poll(
        self, unfinished: set[int], own: dict[int, FrozenTrial] | None = None
    ) -> list[FrozenTrial]:
        """New trials (by number) followed by those of ``unfinished`` (trial ids) not among
        them; every trial as the storage holds it now (not a copy: read, never modify).

        ``own``: trials this engine just created (id -> the template it created them from, as
        given to :func:`create_trial`); an RDB does not read those back.
        """
        store = self._backend
        if isinstance(store, JournalStorage):
            new, old = self._journal(store, unfinished)
        elif isinstance(store, InMemoryStorage):
            new, old = self._memory(store, unfinished)
        elif isinstance(store, RDBStorage):
            new, old = self._rdb(store, unfinished, own or {})
        else:
            new, old = self._generic(unfinished)
        seen = {trial_id(t) for t in new}
        return new + [t for t in old if trial_id(t) not in seen]

    def _journal(self, store: JournalStorage, unfinished: set[int]):
        with store._thread_lock:
            store._sync_with_backend()
            replay = store._replay_result
            ids = replay._study_id_to_trial_ids[self.study]
            new = [replay._trials[i] for i in ids[self._cursor :]]
            self._cursor = len(ids)
            old = [replay._trials[i] for i in unfinished]
        return new, old

    def _memory(self, store: InMemoryStorage, unfinished: set[int]):
        with store._lock:
            trials = store._studies[self.study].trials
            new = trials[self._cursor :]
            self._cursor = len(trials)
            old = [store.get_trial(i) for i in unfinished]
        return new, old

    def _rdb(self, store: RDBStorage, unfinished: set[int], own: dict[int, FrozenTrial]):
        ids = []
        if own:  # a light query first: are there new trials besides ours?
            trials = models.TrialModel.__table__
            with _rdb_session(store) as session:
                ids = session.scalars(
                    select(trials.c.trial_id).where(
                        _of_study(self.study), trials.c.trial_id > self._cursor
                    )
                ).all()
        if ids:
            others = ({i for i in ids} | set(unfinished)) - own.keys()
            got = store._get_trials(self.study, None, others, max(ids)) if others else []
            new = [t for t in got if trial_id(t) in others and trial_id(t) > self._cursor]
            new += [own[i] for i in ids if i in own]  # (later trials: the next poll)
            old = [t for t in got if trial_id(t) <= self._cursor]
            self._cursor = max(ids)
            return sorted(new, key=lambda t: t.number), old
        got = store._get_trials(self.study, None, set(unfinished), self._cursor)
        new = [t for t in got if trial_id(t) > self._cursor]
        old = [t for t in got if trial_id(t) <= self._cursor]
        if new:
            self._cursor = max(trial_id(t) for t in new)
        return sorted(new, key=lambda t: t.number), old

    def _generic(self, unfinished: set[int]):
        trials = self.storage.get_all_trials(self.study, deepcopy=False)
        new = trials[self._cursor :]
        self._cursor = len(trials)
        return new, [t for t in trials if trial_id(t) in unfinished]
