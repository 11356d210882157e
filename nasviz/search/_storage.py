"""Where a search keeps its results: an Optuna storage, created or checked here.

Accepted ``storage`` values:
    * ``None``: a new journal file ``runs/search-<date>-<time>.journal`` (the folder ``runs/``
      under the working directory is created).
    * A path ending in ``.journal`` or ``.log``: Optuna's journal file (an embedded, append-only
      log), written with the chosen ``durability`` (see :data:`DURABILITY`).
    * A path ending in ``.db``, ``.sqlite`` or ``.sqlite3``: SQLite through Optuna's RDB storage.
    * Any RDB URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``).
    * ``":memory:"``: Optuna's in-memory storage (nothing survives the process).
    * An ``optuna.storages.BaseStorage`` instance (e.g. a gRPC proxy client): used as is.

Durability of journal files (``durability=``):
    * ``"process"`` (default): every append is written to the operating system before the call
      returns (no fsync). A killed kernel or process (even SIGKILL) loses nothing already
      evaluated, since the data is in the OS's page cache; an OS crash or power loss may lose
      the last writes.
    * ``"os"``: every append is also fsynced, as Optuna's own backend does; it survives an OS
      crash too, at several milliseconds per write.
SQLite and other RDB storages keep their own (fsyncing) settings; ``durability`` does not apply.

A study stores what nasviz needs to rebuild a search in its user attributes (``nasviz:space``,
``nasviz:objectives``), so :func:`open_study` can refuse a storage that holds another space.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._file import get_lock_file

from nasviz.errors import ConfigError, StorageError
from nasviz.objectives import Objective
from nasviz.space import SearchSpace

__all__ = [
    "DEFAULT_FOLDER",
    "DURABILITY",
    "STUDY_NAME",
    "JournalFile",
    "check_durability",
    "make_storage",
    "open_study",
    "read_spec",
]

DEFAULT_FOLDER = "runs"
STUDY_NAME = "nasviz-search"
SPACE_KEY = "nasviz:space"
OBJECTIVES_KEY = "nasviz:objectives"
_JOURNAL = (".journal", ".log")
_SQLITE = (".db", ".sqlite", ".sqlite3")
#: Accepted ``durability`` values for journal files (see the module docstring).
DURABILITY = ("process", "os")


def _describe(storage: Any) -> str:
    return storage if isinstance(storage, str) else type(storage).__name__


def check_durability(durability: Any) -> str:
    if durability not in DURABILITY:
        raise ConfigError(
            f"durability must be one of {DURABILITY} ('process': a killed process loses nothing; "
            f"'os': fsync every write, survives an OS crash too), got {durability!r}"
        )
    return durability


def make_storage(
    storage: str | Path | BaseStorage | None, durability: str = "process"
) -> tuple[BaseStorage, str]:
    """An Optuna storage for ``storage`` and a printable name; ``durability`` applies to journal
    files (see the module docstring)."""
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
        return _journal(path, durability), str(path)
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
        try:
            return RDBStorage(storage), storage
        except Exception as exc:  # sqlalchemy raises many types for a bad URL or a missing driver
            raise StorageError(f"cannot open the RDB storage {storage!r}: {exc}") from exc
    path = Path(storage).expanduser()
    if path.suffix in _JOURNAL:
        return _journal(path, durability), storage
    if path.suffix in _SQLITE:
        _check_folder(path, storage)
        return RDBStorage(f"sqlite:///{path}"), storage
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


#: Seconds after which a journal's write lock is taken as left behind by a killed process. Writes
#: hold it for milliseconds; Optuna's default (30 s) would stall every resume after a crash.
LOCK_GRACE_S = 3


class JournalFile(JournalFileBackend):
    """Optuna's journal file backend, fsyncing each append only when ``durability="os"``.

    Upstream ``append_logs`` (optuna 5.0.0, pinned) writes, flushes and ``os.fsync``s every
    append; the fsync costs milliseconds and only guards against an OS crash. With
    ``durability="process"`` this override does the same write under the same lock but skips
    the fsync: closing the file hands the bytes to the OS, so a killed process loses nothing.

    Relies on these optuna 5.0.0 internals (re-check them when upgrading optuna): the
    attributes ``_file_path`` and ``_lock`` set by ``JournalFileBackend.__init__``, the helper
    ``optuna.storages.journal._file.get_lock_file``, and the log format (one compact JSON
    object per line) that ``read_logs`` parses.
    """

    def __init__(self, file_path: str, lock_obj: Any = None, durability: str = "process"):
        super().__init__(file_path, lock_obj=lock_obj)
        self.durability = check_durability(durability)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self.durability == "os":
            super().append_logs(logs)
            return
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        with get_lock_file(self._lock), open(self._file_path, "ab") as f:
            f.write(data.encode("utf-8"))  # closing flushes to the OS before the lock is released


def _journal(path: Path, durability: str = "process") -> JournalStorage:
    _check_folder(path, str(path))
    lock = JournalFileSymlinkLock(str(path), grace_period=LOCK_GRACE_S)
    return JournalStorage(JournalFile(str(path), lock_obj=lock, durability=durability))


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


def open_study(
    storage: BaseStorage,
    space: SearchSpace,
    objectives: list[Objective],
    sampler: optuna.samplers.BaseSampler,
    study_name: str = STUDY_NAME,
    where: str = "",
) -> optuna.Study:
    """Creates the study, or loads it and checks it holds the same space and objectives.

    Raises:
        StorageError: the storage holds a study of that name for another space or objectives.
    """
    directions = [o.direction for o in objectives]
    if study_name in study_names(storage):
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        old_space, old_objectives = read_spec(study)
        if old_space != space:
            raise StorageError(
                f"storage {where!r} (study {study_name!r}) holds a search over another space: "
                f"{old_space!r}; yours is {space!r}. Use a new storage or another study_name"
            )
        old = [(o.name, o.direction) for o in old_objectives]
        new = [(o.name, o.direction) for o in objectives]
        if old != new:
            raise StorageError(
                f"storage {where!r} (study {study_name!r}) holds a search with objectives {old}; "
                f"yours are {new}. Use a new storage or another study_name"
            )
        return study
    study = optuna.create_study(
        storage=storage, study_name=study_name, directions=directions, sampler=sampler
    )
    study.set_user_attr(SPACE_KEY, json.loads(space.to_json()))
    study.set_user_attr(OBJECTIVES_KEY, _objectives_spec(objectives))
    return study


def load_existing(storage: BaseStorage, study_name: str | None, where: str) -> optuna.Study:
    """Loads a nasviz study from a storage that already holds it."""
    names = study_names(storage)
    if study_name is None:
        if len(names) != 1:
            raise StorageError(
                f"storage {where!r} holds {len(names)} studies {names}; pass study_name= to choose one"
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
#: User attribute holding nasviz's per-trial record (duration, worker, error, traceback, ...).
RECORD_KEY = "nasviz"


def is_result(trial: optuna.trial.FrozenTrial) -> bool:
    """True for a finished evaluation (COMPLETE or FAIL), not a skipped proposal and not a
    trial a crash left behind (those were never evaluated)."""
    record = trial.user_attrs.get(RECORD_KEY)
    if trial.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL):
        return False
    return record is not None and not record.get("interrupted", False)


def trial_row(
    trial: optuna.trial.FrozenTrial, space: SearchSpace, objectives: list[Objective]
) -> dict[str, Any]:
    """One results row: trial number, state, arch values, objective values, feasibility,
    error and traceback (failures), duration, worker, then any extra values the evaluation
    function returned."""
    record = trial.user_attrs.get(RECORD_KEY, {})
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
    for name in space.names:
        row[name] = trial.params.get(name)
    values = trial.values if trial.state == optuna.trial.TrialState.COMPLETE else None
    for i, o in enumerate(objectives):
        row[o.name] = float(values[i]) if values is not None else float("nan")
    feasible = values is not None and all(c <= 0 for c in trial.constraints.values())
    row["feasible"] = bool(feasible)
    row["error"] = record.get("error", "")
    row["traceback"] = record.get("traceback", "")
    row["duration"] = float(record.get("duration", float("nan")))
    row["worker"] = record.get("worker", "")
    for key, value in record.get("extras", {}).items():
        if key not in row:
            row[key] = value
    return row
