"""The user's data files (CSV, Parquet, .npy, .npz) as a :class:`~nasviz.data.Dataset`.

Tables are read with pandas and go through :func:`~nasviz.data.from_frame`, arrays through
:func:`~nasviz.data.from_arrays`, so files give the same seeded, traceable split as the arrays
they hold. ``.npy`` / ``.npz`` files are read with ``allow_pickle=False``: nothing in a file
runs code.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nasviz.data._arrays import _from_arrays, from_frame
from nasviz.data._dataset import Dataset
from nasviz.errors import ConfigError, check_int

__all__ = ["from_files"]

_TABLES = (".csv", ".parquet", ".pq")
_ARRAYS = (".npy", ".npz")


def _paths(path: str | Path) -> list[Path]:
    """One file, every file of a folder, or a glob pattern's files (sorted)."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(text))
    elif Path(text).is_dir():
        found = sorted(p for p in Path(text).iterdir() if p.suffix in _TABLES + _ARRAYS)
    else:
        found = [Path(text)] if Path(text).is_file() else []
    if not found:
        raise ConfigError(f"no data files at {text!r} (supported: {', '.join(_TABLES + _ARRAYS)})")
    suffixes = {p.suffix.lower() for p in found}
    if len(suffixes) > 1:
        raise ConfigError(f"{text!r} holds files of several kinds {sorted(suffixes)}; pick one")
    if suffixes.pop() not in _TABLES + _ARRAYS:
        raise ConfigError(
            f"cannot read {found[0].name}: supported files are {', '.join(_TABLES + _ARRAYS)}"
        )
    return found


def _read_table(path: Path) -> Any:
    import pandas as pd

    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise ConfigError(
            f"reading {path.name} needs pyarrow: pip install 'nasviz[datasets]' (or pyarrow)"
        ) from exc


def _read_arrays(
    paths: list[Path], target: Any, features: Any
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(X, y, rows per file) from .npy files (target: a column index, or a .npy of labels) or
    one .npz (target: the name of its label array)."""
    if paths[0].suffix.lower() == ".npz":
        if len(paths) > 1:
            raise ConfigError("read one .npz at a time")
        with np.load(paths[0], allow_pickle=False) as npz:
            names = list(npz.files)
            if target not in names:
                raise ConfigError(f"target {target!r} is not an array of {paths[0].name}: {names}")
            others = [n for n in names if n != target] if features is None else [features]
            if len(others) != 1 or others[0] not in names:
                raise ConfigError(
                    f"{paths[0].name} holds {names}: name the input array with features="
                )
            X = npz[others[0]]
            return X, npz[target], [len(X)]
    arrays = [np.load(p, allow_pickle=False) for p in paths]
    rows = [len(a) for a in arrays]
    if isinstance(target, str | Path):
        labels = _paths(target)
        if len(labels) != 1 or labels[0].suffix.lower() != ".npy":
            raise ConfigError(f"target {str(target)!r} must be one .npy file of labels")
        return np.concatenate(arrays), np.load(labels[0], allow_pickle=False), rows
    column = check_int(
        "target (a column index of the .npy array, or a .npy file of labels)", target
    )
    data = np.concatenate(arrays)
    if data.ndim != 2 or not -data.shape[1] <= column < data.shape[1]:
        raise ConfigError(
            f"target={column} must be a column of a 2-D array; the .npy data has shape {data.shape}"
        )
    return np.delete(data, column, axis=1), data[:, column], rows


def from_files(
    path: str | Path,
    target: Any,
    *,
    features: Any = None,
    task: str | None = None,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    name: str | None = None,
    num_classes: int | None = None,
) -> Dataset:
    """Data files as a seeded train / val / test :class:`Dataset` (read into memory).

    Args:
        path: a file, a folder or a glob pattern (``"data/part-*.parquet"``); several files
            (of one kind, sorted by name) are read one after another.
        target: CSV / Parquet: the label column, as in :func:`from_frame`. ``.npy``: a column
            index of the 2-D array, or the path of a ``.npy`` of labels. ``.npz``: the name of
            its label array.
        features: CSV / Parquet: the input columns (default: the others); ``.npz``: the name
            of its input array (default: the one other array).
        task, val, test, seed, num_classes: as in :func:`from_arrays` (same split).
        name: defaults to the first file's stem.

    ``info["files"]`` lists ``(path, rows)`` in reading order, so ``extras["index"]`` traces
    every example to its file and row. Files are read with ``allow_pickle=False``.
    """
    paths = _paths(path)
    name = paths[0].stem if name is None else name
    if paths[0].suffix.lower() in _TABLES:
        import pandas as pd

        frames = [_read_table(p) for p in paths]
        files = [(str(p), len(f)) for p, f in zip(paths, frames, strict=True)]
        ds = from_frame(
            pd.concat(frames, ignore_index=True),
            target,
            features=features,
            task=task,
            val=val,
            test=test,
            seed=seed,
            name=name,
            num_classes=num_classes,
        )
        return _with_info(ds, {"files": files})
    X, y, rows = _read_arrays(paths, target, features)
    files = [(str(p), n) for p, n in zip(paths, rows, strict=True)]
    return _from_arrays(
        X, y, val, test, seed, name, num_classes, None, task=task, info={"files": files}
    )


def _with_info(ds: Dataset, more: Mapping[str, Any]) -> Dataset:
    return dataclasses.replace(ds, info={**ds.info, **more})
