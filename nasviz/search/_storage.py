"""Where a search keeps its results: an Optuna storage, created or checked here.

Accepted ``storage`` values:
    * ``None``: a new journal file ``runs/search-<date>-<time>.journal`` (the folder ``runs/``
      under the working directory is created).
    * A path ending in ``.journal`` or ``.log``: a journal file (Optuna's append-only log
      format; see :mod:`nasviz.search._journal` for its lock, durability and torn records).
    * A path ending in ``.db``, ``.sqlite`` or ``.sqlite3``: SQLite through Optuna's RDB storage.
    * Any RDB URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``). For
      ``postgresql://`` nasviz uses the psycopg (3) driver when psycopg2 is not installed
      (``pip install nasviz[postgres]``).
    * ``":memory:"``: Optuna's in-memory storage (nothing survives the process).
    * An ``optuna.storages.BaseStorage`` instance (e.g. a gRPC proxy client): used as is.

Many processes and machines may share one storage (and one study): see
:mod:`nasviz.search._ledger`. Creating a study is safe from several processes at once: one
creates it and the others load it once its description is written. A search that only browses
(``Search.load`` without a function) never writes to its storage.

A study stores what nasviz needs to rebuild a search in its user attributes (``nasviz:space``,
``nasviz:objectives``), so :func:`open_study` can refuse a storage that holds another space,
and the objectives' names as Optuna's metric names (optuna-dashboard and ``plot_pareto_front``
show them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import logging
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from nasviz.errors import ConfigError, StorageError
from nasviz.objectives import Objective
from nasviz.search import _optuna
from nasviz.search._journal import DURABILITY, JournalFile, check_durability
from nasviz.space import SearchSpace

__all__ = [
    "DEFAULT_FOLDER",
    "DURABILITY",
    "INTERRUPTED_KEY",
    "RECORD_KEY",
    "RESULT_COLUMNS",
    "STUDY_NAME",
    "check_durability",
    "is_result",
    "kind",
    "make_storage",
    "open_study",
    "read_spec",
    "trial_row",
]

DEFAULT_FOLDER = "runs"
STUDY_NAME = "nasviz-search"
SPACE_KEY = "nasviz:space"
OBJECTIVES_KEY = "nasviz:objectives"
#: User attribute holding nasviz's per-trial record (duration, worker, error, traceback, ...).
RECORD_KEY = "nasviz"
#: User attribute a search writes on another search's trial whose process died.
INTERRUPTED_KEY = "nasviz:interrupted"
_JOURNAL = (".journal", ".log")
_SQLITE = (".db", ".sqlite", ".sqlite3")
#: Seconds a search waits for a study another process is creating to get its description.
SPEC_WAIT_S = 30.0
#: Attempts at opening a fresh database that another process is initializing at once.
RDB_ATTEMPTS = 8


def make_storage(
    storage: str | Path | BaseStorage | None,
    durability: str = "process",
    writable: bool = True,
    must_exist: bool = False,
) -> tuple[BaseStorage, str]:
    """An Optuna storage for ``storage`` and a printable name.

    Args:
        storage: see the module docstring.
        durability: for journal files (see :mod:`nasviz.search._journal`).
        writable: False to browse: a journal is opened read-only and nothing is created.
        must_exist: a file storage must exist already (to load; implied by ``writable=False``).

    Raises:
        StorageError: unknown kind, missing folder, unreachable database, not a journal.
    """
    check_durability(durability)
    if isinstance(storage, BaseStorage):
        return storage, type(storage).__name__
    if storage is None:
        folder = Path(DEFAULT_FOLDER)
        folder.mkdir(parents=True, exist_ok=True)
        path = (
            folder
            / f"search-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6:06d}.journal"
        )
        return _journal(path, durability, writable), str(path)
    if isinstance(storage, Path):
        storage = str(storage)
    if not isinstance(storage, str) or not storage:
        raise StorageError(
            f"storage must be a path, an RDB URL, ':memory:' or an optuna storage, got {storage!r}"
        )
    if storage == ":memory:":
        return InMemoryStorage(), storage
    if "://" in storage:
        if storage.startswith("sqlite:///"):
            _check_folder(Path(storage[len("sqlite:///") :]), storage)
            if (must_exist or not writable) and not Path(storage[len("sqlite:///") :]).is_file():
                raise StorageError(f"no stored search at {storage!r} (no such file)")
        return _rdb(storage), storage
    path = Path(storage).expanduser()
    if (must_exist or not writable) and not path.is_file():
        raise StorageError(f"no stored search at {storage!r} (no such file)")
    if path.suffix in _JOURNAL:
        return _journal(path, durability, writable), storage
    if path.suffix in _SQLITE:
        _check_folder(path, storage)
        return _rdb(f"sqlite:///{path}", shown=storage), storage
    raise StorageError(
        f"cannot tell what kind of storage {storage!r} is; use a path ending in {_JOURNAL} "
        f"(journal file) or {_SQLITE} (SQLite), an RDB URL such as 'sqlite:///runs/x.db', "
        "':memory:', or an optuna storage instance"
    )


def _check_folder(path: Path, given: str) -> None:
    folder = path.expanduser().resolve().parent
    if folder == Path(DEFAULT_FOLDER).resolve():
        folder.mkdir(exist_ok=True)  # nasviz's own runs/ folder is made on demand, no other
    if not folder.is_dir():
        raise StorageError(
            f"storage {given!r}: the folder {str(folder)!r} does not exist; create it first"
        )


def _journal(path: Path, durability: str, writable: bool) -> JournalStorage:
    _check_folder(path, str(path))
    backend = JournalFile(path, durability=durability, writable=writable)
    try:
        return JournalStorage(backend)
    except StorageError:
        raise
    except Exception as exc:  # records that parse but are no journal operations
        raise StorageError(
            f"{str(path)!r} is not an Optuna journal: replaying it failed with "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _masked(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _driver(url: str) -> str:
    """``postgresql://`` through psycopg (3) when psycopg2, SQLAlchemy's default, is missing."""
    if (
        url.startswith(("postgresql://", "postgres://"))
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _rdb(url: str, shown: str | None = None) -> RDBStorage:
    """An RDB storage; retries while another process creates the same fresh database's tables
    (their CREATE TABLEs collide); a server that cannot be reached is a StorageError."""
    shown = _masked(shown or url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # several processes: wait for the write lock, not 5 s
        kwargs = {"connect_args": {"timeout": 120}}
    last: Exception | None = None
    for attempt in range(RDB_ATTEMPTS):
        try:
            return RDBStorage(_driver(url), engine_kwargs=kwargs)
        except ImportError as exc:
            raise StorageError(
                f"cannot open {shown!r}: its database driver is not installed ({exc}); for "
                "PostgreSQL install psycopg (pip install 'nasviz[postgres]')"
            ) from exc
        except Exception as exc:  # sqlalchemy: many types for a bad URL, a refused connection
            last = exc
            text = str(exc).lower()
            if not any(s in text for s in ("already exists", "duplicate key", "unique constraint")):
                break
            time.sleep(0.05 * (attempt + 1) * (1 + random.random()))
    raise StorageError(
        f"cannot open the database {shown!r}: {type(last).__name__}: {str(last).splitlines()[0]}. "
        "Check that the server runs and that the URL's host, port, user and database are "
        "right; nothing was created"
    ) from last


# ---- Optuna's creation log, muted for nasviz's own calls only -------------------------------
_QUIET = threading.local()
_STORAGE_LOGGERS = (
    "optuna.storages._in_memory",
    "optuna.storages._rdb.storage",
    "optuna.storages.journal._storage",
)


class _QuietFilter(logging.Filter):
    """Drops records logged below WARNING by a thread inside :func:`_quiet`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not getattr(_QUIET, "on", False)


_FILTER = _QuietFilter()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's storages log every study they create at INFO; inside this context (in this
    thread only) those lines are dropped. Optuna's log level is never changed."""
    for name in _STORAGE_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = False


# ---- the study ----------------------------------------------------------------------------
def _objectives_spec(objectives: list[Objective]) -> list[dict[str, Any]]:
    return [
        {"name": o.name, "direction": o.direction, "cheap": o.cheap, "unit": o.unit}
        for o in objectives
    ]


def read_spec(study: optuna.Study) -> tuple[SearchSpace, list[Objective]]:
    """The space and objectives a study was created with (objectives without functions)."""
    attrs = study.user_attrs
    if SPACE_KEY not in attrs or OBJECTIVES_KEY not in attrs:
        raise StorageError(
            f"study {study.study_name!r} was not created by nasviz (no {SPACE_KEY!r} user attribute)"
        )
    space = SearchSpace(attrs[SPACE_KEY])
    objectives = [
        Objective(o["name"], o["direction"], cheap=o["cheap"], unit=o["unit"])
        for o in attrs[OBJECTIVES_KEY]
    ]
    return space, objectives


def study_names(storage: BaseStorage) -> list[str]:
    """Names of the studies a storage holds."""
    return [s.study_name for s in storage.get_all_studies()]


def _spec_written(study: optuna.Study) -> bool:
    attrs = study.user_attrs
    return SPACE_KEY in attrs and OBJECTIVES_KEY in attrs


def open_study(
    storage: BaseStorage,
    space: SearchSpace,
    objectives: list[Objective],
    sampler: optuna.samplers.BaseSampler,
    study_name: str = STUDY_NAME,
    where: str = "",
) -> optuna.Study:
    """Creates the study, or loads it and checks it holds the same space and objectives. Safe
    when several processes do it at once (one creates it; the others wait for its description).

    Raises:
        StorageError: the storage holds a study of that name for another space or objectives.
    """
    names = [o.name for o in objectives]
    deadline = time.monotonic() + SPEC_WAIT_S
    with _quiet():
        while True:
            if study_name in study_names(storage):
                study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
                while not _spec_written(study) and time.monotonic() < deadline:
                    time.sleep(0.05)  # another process created it a moment ago
                _check_same(study, space, objectives, where)
                if (
                    _optuna.storage_of(study)
                    .get_study_system_attrs(_optuna.study_id(study))
                    .get(_optuna.METRIC_NAMES_KEY)
                    != names
                ):
                    _set_metric_names(study, names)  # a study of an older nasviz
                return study
            try:
                study = optuna.create_study(
                    storage=storage,
                    study_name=study_name,
                    directions=[o.direction for o in objectives],
                    sampler=sampler,
                )
            except optuna.exceptions.DuplicatedStudyError:
                continue  # another process was faster: load theirs
            _set_metric_names(study, names)
            study.set_user_attr(SPACE_KEY, json.loads(space.to_json()))
            study.set_user_attr(OBJECTIVES_KEY, _objectives_spec(objectives))  # the last write
            return study


def _set_metric_names(study: optuna.Study, names: list[str]) -> None:
    _optuna.storage_of(study).set_study_system_attr(
        _optuna.study_id(study), _optuna.METRIC_NAMES_KEY, names
    )


def _check_same(
    study: optuna.Study, space: SearchSpace, objectives: list[Objective], where: str
) -> None:
    name = study.study_name
    old_space, old_objectives = read_spec(study)
    if old_space != space:
        raise StorageError(
            f"storage {where!r} (study {name!r}) holds a search over another space: "
            f"{old_space!r}; yours is {space!r}. Use a new storage or another study_name"
        )
    old = [(o.name, o.direction) for o in old_objectives]
    new = [(o.name, o.direction) for o in objectives]
    if old != new:
        raise StorageError(
            f"storage {where!r} (study {name!r}) holds a search with objectives {old}; "
            f"yours are {new}. Use a new storage or another study_name"
        )


def load_existing(
    storage: BaseStorage, study_name: str | None, where: str, choose: str = "study_name="
) -> optuna.Study:
    """Loads a nasviz study from a storage that already holds it (reads only); ``choose``:
    how the caller names a study (the message when the storage holds several)."""
    names = study_names(storage)
    if study_name is None:
        if len(names) != 1:
            raise StorageError(
                f"storage {where!r} holds {len(names)} studies {names}; pass {choose} to choose one"
                if names
                else f"storage {where!r} holds no search"
            )
        study_name = names[0]
    elif study_name not in names:
        raise StorageError(f"storage {where!r} has no study {study_name!r}; it holds {names}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    read_spec(study)
    return study


def check_study_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"study_name must be a non-empty string, got {name!r}")
    return name


# ---- archs as Optuna params ---------------------------------------------------------------
def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """One Optuna distribution per dimension, holding the real values (so Optuna's own plots
    show them): evenly spaced ints become an IntDistribution with a step, everything else a
    CategoricalDistribution."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, values in space.dims.items():
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        steps = {b - a for a, b in itertools.pairwise(values)} if ints else set()
        if ints and len(values) > 1 and len(steps) == 1:
            out[name] = optuna.distributions.IntDistribution(
                values[0], values[-1], step=steps.pop()
            )
        else:
            out[name] = optuna.distributions.CategoricalDistribution(list(values))
    return out


# ---- trials as result rows ----------------------------------------------------------------
def kind(trial: FrozenTrial) -> str:
    """What a trial is to a search:

    * ``"claim"``: RUNNING (being evaluated, or left by a process that died);
    * ``"result"``: an evaluation that counts against the budget: COMPLETE, FAIL with nasviz's
      record, or PRUNED by early stopping (its record has ``pruned_at``);
    * ``"interrupted"``: FAIL because the process evaluating it died (its arch is retried);
    * ``"skipped"``: anything else (proposals never evaluated, trials of other tools).
    """
    record = trial.user_attrs.get(RECORD_KEY)
    if trial.state == TrialState.RUNNING:
        return "claim"
    if trial.state == TrialState.COMPLETE:
        return "result"
    if trial.state == TrialState.FAIL:
        if INTERRUPTED_KEY in trial.user_attrs or (record or {}).get("interrupted"):
            return "interrupted"
        return "result" if record is not None else "skipped"
    if trial.state == TrialState.PRUNED and record is not None and "pruned_at" in record:
        return "result"
    return "skipped"


def is_result(trial: FrozenTrial) -> bool:
    """True for an evaluation that counts (see :func:`kind`)."""
    return kind(trial) == "result"


#: Bookkeeping columns of ``Search.results`` (everything but the arch, the objectives and the
#: extra values an evaluation function returned), in order.
RESULT_COLUMNS = (
    "trial",
    "state",
    "feasible",
    "error",
    "traceback",
    "duration",
    "worker",
    "searcher",
    "step",
    "rung",
)


def trial_row(
    trial: FrozenTrial, space: SearchSpace, objectives: list[Objective]
) -> dict[str, Any]:
    """One results row (see ``Search.results``): trial number, state, arch values, objective
    values, feasibility, error and traceback (failures), duration, worker, searcher, step and
    rung (early stopping), then any extra values the evaluation function returned."""
    from nasviz.search._lease import LEASE_KEY

    record = trial.user_attrs.get(RECORD_KEY, {})
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
    for name in space.names:
        row[name] = trial.params.get(name)
    if trial.state == TrialState.COMPLETE:
        values = trial.values
    elif trial.state == TrialState.PRUNED:
        values = record.get("values")  # the last reported values, at step ``pruned_at``
    else:
        values = None
    for i, o in enumerate(objectives):
        row[o.name] = float(values[i]) if values is not None else float("nan")
    feasible = trial.state == TrialState.COMPLETE and all(
        c <= 0 for c in trial.constraints.values()
    )
    row["feasible"] = bool(feasible)
    row["error"] = record.get("error", "")
    row["traceback"] = record.get("traceback", "")
    row["duration"] = float(record.get("duration", float("nan")))
    row["worker"] = record.get("worker", "")
    lease = trial.system_attrs.get(LEASE_KEY) or {}
    row["searcher"] = f"{lease['host']}:{lease['pid']}" if "host" in lease else ""
    row["step"] = float(record["step"]) if record.get("step") is not None else float("nan")
    row["rung"] = float(record["rung"]) if record.get("rung") is not None else float("nan")
    for key, value in record.get("extras", {}).items():
        if key not in row:
            row[key] = value
    return row
