"""``nasviz worker``: joins a search defined elsewhere (a notebook, a script, another machine).

::

    nasviz worker --storage postgresql://user@db/nas --study nasviz-search
    nasviz worker --storage runs/cnn.journal --objective mypackage.train:evaluate --workers 2

The worker opens the study, takes its space, objectives, strategy, budget and early stopping
from the storage, imports the evaluation function by module path (the one the search was
created with, stored as ``module:function``, or ``--objective``), and evaluates archs until the
shared budget is reached: every worker and the notebook share the budget, never evaluate one
arch twice, and retry the arch of a worker that died (see :mod:`nasviz.search._ledger`). A
function defined in a notebook or a script run as ``__main__`` has no importable path: put it
in a module and pass ``--objective``. The current folder is importable, as with ``python -m``.

Supernet searches measure a network that lives in the notebook's process, so they are joined
from Python instead: ``Search.load(storage, net, objectives=[...]).run()``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from nasviz.errors import ConfigError, NasvizError, StorageError
from nasviz.runner import RunStatus
from nasviz.space import SearchSpace

__all__ = ["import_objective", "main", "run_worker", "worker"]


def import_objective(path: str) -> Callable[..., Any]:
    """The callable at ``"module:qualname"`` (the current folder importable).

    Raises:
        ConfigError: malformed path, module or attribute missing, or not callable.
    """
    obj = _resolve(path, "objective")
    if not callable(obj):
        raise ConfigError(f"the objective {path!r} is a {type(obj).__name__}, not a function")
    return obj


def _resolve(path: str, what: str) -> Any:
    """The object at ``"module:qualname"`` (the current folder importable)."""
    if not isinstance(path, str) or path.count(":") != 1 or not all(path.split(":")):
        raise ConfigError(
            f"an {what} is given as 'module:name' (e.g. 'mypackage.train:evaluate'), got {path!r}"
        )
    module_name, qualname = path.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"cannot import the {what} {path!r}: importing module {module_name!r} raised "
            f"{type(exc).__name__}: {exc}. A worker imports it by module path: make that "
            "module importable here (install it, run the worker from its folder, or set "
            "PYTHONPATH)"
        ) from exc
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                f"cannot import the {what} {path!r}: {module_name!r} has no {qualname!r}"
            )
        obj = getattr(obj, part)
    return obj


def worker(
    storage: str,
    study: str | None = None,
    *,
    objective: str | None = None,
    budget: int | None = None,
    workers: int = 1,
    seed: int | None = None,
    space: str | None = None,
    heartbeat: float | None = None,
    progress: bool = False,
) -> RunStatus:
    """Joins the search ``study`` on ``storage`` and evaluates until its budget is reached
    (what ``nasviz worker`` runs); returns the final status.

    Args:
        storage: the shared storage (RDB URL or journal path; not ``:memory:``).
        study: the study's name (None: the storage's only study).
        objective: ``module:function`` to evaluate archs with (None: the stored one).
        budget: overrides the stored budget (for every search that reads it afterwards).
        workers: evaluations in flight at once in this worker (threads).
        seed: the worker's strategy seed (None: unseeded, so workers propose different archs).
        space: ``module:NAME`` of the SearchSpace the objective expects; checked against the
            study's, so a worker never evaluates archs of a space it was not written for.
        heartbeat: lease renewal period in seconds (None: the default).
        progress: show a progress bar.

    Raises:
        StorageError: no such storage or study, or a study of another space.
        ConfigError: the objective cannot be imported, or bad arguments.
    """
    from nasviz.search._optuna import backend
    from nasviz.search._search import SETTINGS_KEY, Search
    from nasviz.search._storage import load_existing, make_storage

    if storage == ":memory:":
        raise ConfigError("a worker needs a storage other processes can reach, not ':memory:'")
    optuna_storage, where = make_storage(storage, writable=False)
    try:
        found = load_existing(optuna_storage, study, where, "study= (--study NAME)")
    finally:
        engine = getattr(backend(optuna_storage), "engine", None)
        if engine is not None:  # (an RDB: Search.load below opens its own)
            engine.dispose()
    if objective is None:
        objective = found.user_attrs.get(SETTINGS_KEY, {}).get("function")
        if objective is None:
            raise ConfigError(
                f"the search on {where!r} names no importable evaluation function (it was "
                "defined in a notebook or a __main__ script, or the search measures a "
                "supernet); pass --objective module:function"
            )
    fn = import_objective(objective)
    expected = None
    if space is not None:
        expected = _resolve(space, "space")
        if not isinstance(expected, SearchSpace | dict):
            raise ConfigError(
                f"--space must name a SearchSpace (or a dict of dimensions) as 'module:NAME'; "
                f"{space!r} is a {type(expected).__name__}"
            )
    kwargs: dict[str, Any] = {"workers": workers, "seed": seed}
    if budget is not None:
        kwargs["budget"] = budget
    if heartbeat is not None:
        kwargs["heartbeat"] = heartbeat
    search = Search.load(storage, fn, study_name=study, space=expected, **kwargs)
    search.start()
    try:
        status = search.wait(progress=progress)
    except KeyboardInterrupt:  # Ctrl-C: finish and persist the evaluations in flight
        status = search.stop()
    if status.state == "failed":
        print(search.traceback, file=sys.stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasviz worker",
        description=__doc__.split("::")[0].strip(),
        epilog="example: nasviz worker --storage postgresql://user@db/nas --study nasviz-search",
    )
    parser.add_argument("--storage", required=True, help="RDB URL or journal file of the search")
    parser.add_argument("--study", default=None, help="study name (default: the only one)")
    parser.add_argument(
        "--objective", default=None, metavar="MODULE:FUNCTION", help="evaluation function"
    )
    parser.add_argument("--budget", type=int, default=None, help="override the stored budget")
    parser.add_argument("--workers", type=int, default=1, help="evaluations at once (threads)")
    parser.add_argument("--seed", type=int, default=None, help="strategy seed (default: none)")
    parser.add_argument(
        "--space", default=None, metavar="MODULE:NAME", help="the SearchSpace the function expects"
    )
    parser.add_argument("--heartbeat", type=float, default=None, help="lease renewal period (s)")
    return parser


def main(argv: Sequence[str]) -> int:
    """``nasviz worker ARGS``: parses ``argv`` (without ``worker``) and runs the worker."""
    return run_worker(_parser().parse_args(list(argv)))


def run_worker(args: argparse.Namespace) -> int:
    """Runs ``nasviz worker``; returns the exit code (0 finished, 1 failed or stopped, 2 bad
    input)."""
    try:
        status = worker(
            args.storage,
            args.study,
            objective=args.objective,
            budget=args.budget,
            workers=args.workers,
            seed=args.seed,
            space=args.space,
            heartbeat=args.heartbeat,
            progress=sys.stderr.isatty(),
        )
    except (ConfigError, StorageError) as exc:
        print(f"nasviz worker: error: {exc}", file=sys.stderr)
        return 2
    except NasvizError as exc:
        print(f"nasviz worker: error: {exc}", file=sys.stderr)
        return 1
    print(f"nasviz worker: {status}", flush=True)
    return 0 if status.state == "finished" else 1
