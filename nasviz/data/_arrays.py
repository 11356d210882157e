"""The user's own data in memory: arrays or a pandas DataFrame (files: see ``_files.py``).

These and :func:`~nasviz.data.from_files` give a :class:`~nasviz.data.Dataset` with the same seeded, disjoint, traceable
train / val / test split: :func:`from_frame` and :func:`from_files` turn their input into arrays
and call the same code as :func:`from_arrays`, so equal arrays and seed give equal splits, and
``split.extras["index"]`` holds each example's row (its position in the frame, or in the files
read one after another, see ``info["files"]``).

Which task: ``task="classification"`` (integer labels ``0..C-1``; a DataFrame's string or
category labels are mapped to codes, their names kept in ``info["classes"]``) or
``task="regression"`` (float targets, one or several per row). ``task=None`` means
classification; float targets that are not whole numbers are then refused with a message that
asks for ``task="regression"``, so a typo in a label column never silently becomes regression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from nasviz.data._dataset import (
    TASKS,
    Dataset,
    _check_split_args,
    _make_splits,
    _split_indices,
)
from nasviz.errors import ConfigError, ShapeError, check_int

__all__ = ["frame_arrays", "from_arrays", "from_frame"]

_SHOWN = 5  # rows / columns named in messages about bad values


def _refuse_containers(name: str, values: Any) -> None:
    """A DataLoader or torch Dataset is data for training directly, not an array."""
    from torch.utils.data import DataLoader
    from torch.utils.data import Dataset as TorchDataset

    if isinstance(values, DataLoader | TorchDataset):
        raise ConfigError(
            f"{name} is a {type(values).__name__}; from_arrays takes arrays (numpy arrays, "
            "tensors or nested lists). Training and evaluation take a DataLoader or a torch "
            "Dataset as it is (see nasviz.data.as_batches); for a table or files use "
            "nasviz.data.from_frame / from_files"
        )


def _numeric_array(name: str, values: Any) -> np.ndarray:
    """``values`` as a rectangular numeric numpy array, or a ShapeError / ConfigError."""
    _refuse_containers(name, values)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values)
    except ValueError as exc:  # numpy >= 1.24 refuses ragged nested lists
        raise ShapeError(
            f"{name} is ragged (rows of different lengths); it must be a rectangular "
            f"(n, ...) array: {exc}"
        ) from exc
    if array.dtype.kind not in "biuf":
        kind = "Python objects" if array.dtype.kind == "O" else f"dtype {array.dtype}"
        raise ConfigError(
            f"{name} must hold numbers (bool, int or float), got {kind}; "
            + (
                "map string labels to ints first, e.g. np.unique(y, return_inverse=True)"
                if name == "y"
                else "encode text or categories as numbers first"
            )
        )
    return np.require(array, requirements=["C", "W"])  # torch wants writable memory


def _where_not_finite(name: str, values: torch.Tensor, columns: Sequence[str] | None) -> str:
    """'X contains 3 NaN or infinite values in 2 rows (rows 4, 9; columns 'a', 'b')'."""
    bad = ~torch.isfinite(values)
    count = int(bad.sum())
    per_row = bad.reshape(len(values), -1).any(1)
    rows = torch.nonzero(per_row).flatten().tolist()
    where = f"rows {', '.join(map(str, rows[:_SHOWN]))}{', ...' if len(rows) > _SHOWN else ''}"
    if values.ndim == 2:
        cols = torch.nonzero(bad.any(0)).flatten().tolist()
        shown = [repr(columns[c]) if columns is not None else str(c) for c in cols[:_SHOWN]]
        where += f"; columns {', '.join(shown)}{', ...' if len(cols) > _SHOWN else ''}"
    elif values.ndim > 2:
        first = [tuple(p) for p in torch.nonzero(bad)[:3].tolist()]
        where += f"; first positions (row, ...) {first}"
    return (
        f"{name} contains {count} NaN or infinite value{'s' * (count != 1)} in {len(rows)} "
        f"row{'s' * (len(rows) != 1)} ({where}); drop or impute them first"
    )


def _targets(yt: torch.Tensor, task: str | None, num_classes: Any) -> tuple[torch.Tensor, str, int]:
    """Checked targets, the task and the model's outputs (classes, or values to regress)."""
    if task is not None and task not in TASKS:
        raise ConfigError(f"task must be None or one of {TASKS}, got {task!r}")
    if task == "regression":
        if num_classes is not None:
            raise ConfigError("num_classes is for classification; regression has none")
        if yt.ndim not in (1, 2):
            raise ShapeError(
                f"regression targets must have shape (n,) or (n, outputs); got {tuple(yt.shape)}"
            )
        yt = yt.float()
        if not torch.isfinite(yt).all():
            raise ConfigError(_where_not_finite("y", yt, None))
        return yt, "regression", 1 if yt.ndim == 1 else yt.shape[1]
    if yt.ndim != 1:
        raise ShapeError(f"y must be one label per row, shape (n,); got {tuple(yt.shape)}")
    if yt.is_floating_point() and not torch.equal(yt, yt.round()):
        row = int(torch.nonzero(yt != yt.round())[0])
        raise ConfigError(
            f"y must hold integer class labels for classification; got non-integer floats "
            f"(first {float(yt[row])!r} at row {row}); pass task='regression' for real-valued "
            "targets"
        )
    yt = yt.long()
    if int(yt.min()) < 0:
        raise ConfigError(f"labels must be >= 0, got {int(yt.min())}")
    classes = int(yt.max()) + 1
    if num_classes is not None:
        if check_int("num_classes", num_classes, 1) < classes:
            raise ConfigError(f"num_classes={num_classes} but labels go up to {classes - 1}")
        classes = int(num_classes)
    return yt, "classification", classes


def from_arrays(
    X: Any,
    y: Any,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    name: str = "arrays",
    num_classes: int | None = None,
    extras: Mapping[str, Any] | None = None,
    *,
    task: str | None = None,
) -> Dataset:
    """Wraps the user's own arrays in a seeded train / val / test split.

    Args:
        X: (n, ...) numeric features; floats become float32, integers (and bools) become int64
            token ids, which must be >= 0.
        y: (n,) integer class labels 0..C-1 (map string labels to ints first, e.g. with
            ``np.unique(y, return_inverse=True)``), or with ``task="regression"`` float targets
            of shape (n,) or (n, outputs).
        val, test: fractions held out; each asked-for split gets at least one row (fewer rows
            than that is a ConfigError naming the minimum).
        num_classes: defaults to ``max(y) + 1`` (classification only).
        extras: per-example arrays carried along (for example ``{"task": ...}``); ``"index"``
            is taken: every split's ``extras["index"]`` holds the rows of ``X`` it got.
        task: ``"classification"``, ``"regression"`` or None (classification; non-integer
            float labels are then an error that asks for ``task="regression"``).
    """
    return _from_arrays(X, y, val, test, seed, name, num_classes, extras, task=task)


def _from_arrays(
    X: Any,
    y: Any,
    val: float,
    test: float,
    seed: int,
    name: str,
    num_classes: int | None,
    extras: Mapping[str, Any] | None,
    *,
    task: str | None,
    columns: Sequence[str] | None = None,
    info: Mapping[str, Any] | None = None,
) -> Dataset:
    """:func:`from_arrays` with the column names messages use and extra ``info``."""
    _check_split_args(val, test, seed)
    if extras is not None and "index" in extras:
        raise ConfigError(
            "extras may not be called 'index': every split's extras['index'] already holds "
            "its rows of X; rename yours"
        )
    Xt = torch.from_numpy(_numeric_array("X", X))
    yt = torch.from_numpy(_numeric_array("y", y))
    if Xt.ndim < 1 or len(Xt) == 0:
        raise ShapeError(f"X must have at least one row, got shape {tuple(Xt.shape)}")
    if yt.ndim == 0 or len(Xt) != len(yt):
        raise ShapeError(
            f"X has {len(Xt)} rows but y has {len(yt) if yt.ndim else 'none'}; they must match"
        )
    yt, task, classes = _targets(yt, task, num_classes)
    Xt = Xt.float() if Xt.is_floating_point() else Xt.long()
    if Xt.is_floating_point() and not torch.isfinite(Xt).all():
        raise ConfigError(_where_not_finite("X", Xt, columns))
    if not Xt.is_floating_point() and int(Xt.min()) < 0:
        raise ConfigError(
            f"integer X is read as token ids, which must be >= 0 (they index an embedding); "
            f"got {int(Xt.min())}. Pass floats for real-valued features"
        )
    extra_t = {
        k: torch.from_numpy(_numeric_array(f"extra {k!r}", v)) for k, v in (extras or {}).items()
    }
    for k, v in extra_t.items():
        if len(v) != len(yt):
            raise ShapeError(f"extra {k!r} has {len(v)} rows but y has {len(yt)}; they must match")
    idx = _split_indices(len(yt), val, test, seed)
    splits = _make_splits(Xt, yt, extra_t, idx)
    vocab = int(Xt.max()) + 1 if not Xt.is_floating_point() else None
    return Dataset(
        name,
        *splits,
        num_classes=classes,
        input_shape=tuple(Xt.shape[1:]),
        vocab_size=vocab,
        info={"seed": seed, **(info or {})},
        task=task,
    )


# ---- tables ----------------------------------------------------------------------------------
def _label_codes(column: Any, task: str | None) -> tuple[np.ndarray, list[Any] | None]:
    """A label column as numbers; string / category labels become codes (sorted names)."""
    import pandas as pd

    if task != "regression" and not (
        pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    ):
        codes, classes = pd.factorize(column, sort=True)
        if (codes < 0).any():
            raise ConfigError(
                f"the target column has {int((codes < 0).sum())} missing labels "
                f"(first at row {int(np.flatnonzero(codes < 0)[0])}); drop those rows first"
            )
        return codes.astype(np.int64), list(classes)
    values = column.to_numpy()
    if values.dtype.kind == "f" and np.isnan(values).any():
        rows = np.flatnonzero(np.isnan(values))
        raise ConfigError(
            f"the target column has {len(rows)} missing values (rows "
            f"{', '.join(map(str, rows[:_SHOWN]))}{', ...' if len(rows) > _SHOWN else ''}); "
            "drop or fill those rows first"
        )
    return values, None


def frame_arrays(
    df: Any, target: str | Sequence[str], features: Sequence[str] | None, task: str | None
) -> tuple[np.ndarray, np.ndarray, list[str], list[Any] | None]:
    """``(X, y, feature names, class names or None)`` of a DataFrame; see :func:`from_frame`."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"expected a pandas DataFrame, got {type(df).__name__}")
    targets = [target] if isinstance(target, str) else list(target or ())
    if not targets or not all(isinstance(t, str) for t in targets):
        raise ConfigError(
            f"target must name the label column of the DataFrame (for regression also a list "
            f"of columns); got {target!r}. Its columns are {list(map(str, df.columns))}"
        )
    if len(targets) > 1 and task != "regression":
        raise ConfigError("several target columns need task='regression'")
    missing = [t for t in targets if t not in df.columns]
    if missing:
        raise ConfigError(
            f"target {missing[0]!r} is not a column of the DataFrame; its columns are "
            f"{list(map(str, df.columns))}"
        )
    columns = [c for c in df.columns if c not in targets] if features is None else list(features)
    unknown = [c for c in columns if c not in df.columns]
    if unknown:
        raise ConfigError(f"features {unknown} are not columns; the columns are {list(df.columns)}")
    if not columns:
        raise ConfigError(f"the DataFrame has no feature columns besides the target {targets}")
    odd = [
        c
        for c in columns
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))
    ]
    if odd:
        kinds = ", ".join(f"{c!r} ({df[c].dtype})" for c in odd[:_SHOWN])
        raise ConfigError(
            f"feature columns must be numeric or bool; {kinds} are not: encode them first, "
            f"e.g. pd.get_dummies(df, columns={odd[:_SHOWN]}), or leave them out with features="
        )
    X = df[columns].to_numpy(dtype=np.float32, na_value=np.nan)
    classes = None
    if len(targets) == 1:
        y, classes = _label_codes(df[targets[0]], task)
    else:
        y = df[targets].to_numpy(dtype=np.float32, na_value=np.nan)
    X, y = (np.require(a, requirements=["C", "W"]) for a in (X, y))  # pandas may hand out views
    return X, y, [str(c) for c in columns], classes


def from_frame(
    df: Any,
    target: str | Sequence[str],
    *,
    features: Sequence[str] | None = None,
    task: str | None = None,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    name: str = "frame",
    num_classes: int | None = None,
) -> Dataset:
    """A pandas DataFrame as a seeded train / val / test :class:`Dataset`.

    Args:
        df: one row per example.
        target: the label column (for regression, also a list of columns).
        features: the input columns, in order (default: every other column). They must be
            numeric or bool (encode categories first, e.g. ``pd.get_dummies``); inputs become
            float32 (integer columns are features here, not token ids).
        task: see :func:`from_arrays`. String or category labels become codes ``0..C-1`` in
            sorted order; ``info["classes"]`` keeps their names.
        val, test, seed, num_classes: as in :func:`from_arrays`, with the same split: equal
            arrays and seed give equal splits. ``extras["index"]`` holds row positions
            (``df.iloc``).
    """
    X, y, columns, classes = frame_arrays(df, target, features, task)
    info: dict[str, Any] = {"columns": columns, "target": target}
    if classes is not None:
        info["classes"] = classes
    return _from_arrays(
        X, y, val, test, seed, name, num_classes, None, task=task, columns=columns, info=info
    )
