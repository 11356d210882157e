"""Files that hold resumable work, such as a search's journal, between pipeline runs.

A step that can resume (the search continues from the evaluations its journal holds) keeps its
file when the file was started for the same inputs and parameters, recorded in a key file
beside it; otherwise the earlier file is moved aside (``search.1.journal``), never deleted, and
the step starts afresh.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["prepare_resumable"]


def _key_file(path: Path) -> Path:
    return path.with_name(f"{path.name}.key.json")


def _aside(path: Path) -> Path:
    """The first free ``stem.N.suffix`` beside ``path`` (N = 1, 2, ...)."""
    n = 1
    while True:
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        if not candidate.exists() and not _key_file(candidate).exists():
            return candidate
        n += 1


def prepare_resumable(path: str | Path, key: Mapping[str, Any]) -> Path | None:
    """Makes ``path`` ready for work identified by ``key`` (JSON-serializable).

    When ``path`` exists and was started with an equal ``key``, it is left as it is, for the
    work to resume from it. When it exists with another key (or none), it and its key file are
    moved aside. Then ``key`` is recorded. Returns where an earlier file was moved, else None.
    """
    path = Path(path)
    key_file = _key_file(path)
    wanted = json.loads(json.dumps(dict(key), sort_keys=True, default=str))
    moved = None
    if path.exists():
        try:
            recorded = json.loads(key_file.read_text())
        except (OSError, ValueError):
            recorded = None
        if recorded == wanted:
            return None
        moved = _aside(path)
        path.rename(moved)
        if key_file.exists():
            key_file.rename(_key_file(moved))
    key_file.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    return moved
