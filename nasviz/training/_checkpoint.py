"""Checkpoints that survive a kill at any moment: atomic writes, the previous one kept.

:func:`save_checkpoint` writes ``path`` so that a process killed at any instant leaves a
complete checkpoint behind:

1. the new checkpoint goes to a temporary file beside it (``.NAME.partial``), is flushed and
   fsync'ed;
2. the current checkpoint, if any, is renamed to ``NAME.prev`` (atomic);
3. the temporary file is renamed to ``NAME`` (atomic) and the folder is fsync'ed.

Between 2 and 3 ``NAME`` is missing and ``NAME.prev`` is complete; otherwise ``NAME`` is
complete. :func:`load_checkpoint` reads ``NAME`` and, when it is missing, truncated or corrupt,
falls back to ``NAME.prev`` with a :class:`~nasviz.NasvizWarning`. Files are read with
``torch.load(..., weights_only=True)`` only (nothing in them runs), and a file that cannot be
read that way is reported as corrupt, never with advice to turn that off.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from nasviz._torchfile import read_torch_file, unreadable_reason
from nasviz.errors import CheckpointError, NasvizWarning

__all__ = ["checkpoint_exists", "load_checkpoint", "previous_path", "save_checkpoint"]


def previous_path(path: str | Path) -> Path:
    """Where the checkpoint before the newest one is kept (``NAME.prev``)."""
    path = Path(path)
    return path.with_name(path.name + ".prev")


def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def checkpoint_exists(path: str | Path) -> bool:
    """Whether ``path`` or its previous checkpoint exists (a kill between the two renames of a
    save leaves only the previous one)."""
    return Path(path).exists() or previous_path(path).exists()


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some systems (Windows): nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(blob: dict[str, Any], path: str | Path) -> Path:
    """Writes ``blob`` (tensors, numbers, strings, lists and dicts) to ``path`` atomically,
    keeping the checkpoint it replaces as ``NAME.prev`` (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_path(path)
    with open(partial, "wb") as f:
        torch.save(blob, f)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, previous_path(path))
    os.replace(partial, path)
    _fsync_folder(path.parent)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The newest readable checkpoint at ``path``: ``(blob, the file it came from)``.

    Falls back to ``NAME.prev`` (with a NasvizWarning naming what was wrong) when ``path`` is
    missing, truncated or corrupt.

    Raises:
        CheckpointError: neither file can be read (the message says why for each).
    """
    path = Path(path)
    problems = []
    for candidate in (path, previous_path(path)):
        if not candidate.exists():
            problems.append(f"{candidate} does not exist")
            continue
        try:
            blob = read_torch_file(candidate)
        except Exception as exc:  # truncated, corrupt, or not a torch file
            problems.append(f"{candidate} is truncated or corrupt ({unreadable_reason(exc)})")
            continue
        if not isinstance(blob, dict):
            problems.append(f"{candidate} holds a {type(blob).__name__}, not a checkpoint")
            continue
        if candidate != path:
            warnings.warn(
                f"{problems[0]}; resuming from the previous checkpoint {candidate}",
                NasvizWarning,
                stacklevel=2,
            )
        return blob, candidate
    raise CheckpointError("no readable checkpoint: " + "; ".join(problems)) from None
