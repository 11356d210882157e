"""Built-in datasets that need no download, and a wrapper for the user's own arrays.

Every dataset is a :class:`Dataset`: three :class:`Split` s (train / val / test) of tensors with
a fixed, seeded split, plus what a model needs to know (number of classes, input shape,
vocabulary size for token data). The splits are disjoint; ``split.extras["index"]`` holds each
example's row in the full data, so any example can be traced back to where it came from.

* :func:`digits` — scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes).
* :func:`tasks` — a synthetic multi-task token-sequence classification set whose tasks need
  different features (presence, counting, comparing positions, magnitude); used to show
  mixture-of-experts routing specializing by task.
* :func:`from_arrays` — the user's own ``X, y`` (numpy arrays or tensors).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from nasviz.errors import ConfigError, ShapeError, check_int, check_real

__all__ = ["Dataset", "Split", "digits", "from_arrays", "tasks"]


@dataclass(frozen=True)
class Split:
    """One split: inputs ``X``, integer labels ``y`` and optional per-example ``extras``
    (for example ``task`` ids; built datasets always carry ``index``) that line up with ``y``."""

    X: torch.Tensor
    y: torch.Tensor
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.y)
        if len(self.X) != n:
            raise ShapeError(f"X has {len(self.X)} rows but y has {n}; they must match")
        for name, values in self.extras.items():
            if len(values) != n:
                raise ShapeError(
                    f"extra {name!r} has {len(values)} rows but y has {n}; they must match"
                )

    def __len__(self) -> int:
        return len(self.y)

    def loader(self, batch_size: int = 64, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """A DataLoader over ``(X, y)``; shuffling is seeded so epochs are reproducible."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(
            TensorDataset(self.X, self.y),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
        )

    def batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Plain in-order ``(X, y)`` slices: cheaper than a DataLoader for evaluation."""
        for i in range(0, len(self), batch_size):
            yield self.X[i : i + batch_size], self.y[i : i + batch_size]

    def subset(self, n: int) -> Split:
        """The first ``n`` examples (for quick checks)."""
        return Split(self.X[:n], self.y[:n], {k: v[:n] for k, v in self.extras.items()})


@dataclass(frozen=True)
class Dataset:
    """Train / val / test splits and what a model needs to know about them.

    Attributes:
        input_shape: shape of one example (without the batch dimension).
        vocab_size: number of distinct tokens for token data, else None.
        info: free-form facts (task names, normalization constants, seed).
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    vocab_size: int | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        sizes = f"train={len(self.train)}, val={len(self.val)}, test={len(self.test)}"
        return f"Dataset({self.name!r}, {sizes}, classes={self.num_classes}, input_shape={self.input_shape})"


def _check_split_args(val: Any, test: Any, seed: Any) -> None:
    """Fractions in [0, 1) that leave training data, and a seed numpy accepts (an int >= 0)."""
    for name, frac in (("val", val), ("test", test)):
        frac = check_real(f"{name} (a fraction)", frac)
        if not 0.0 <= frac < 1.0:
            raise ConfigError(f"{name} fraction must be in [0, 1), got {frac}")
    if val + test >= 1.0:
        raise ConfigError(f"val + test must leave training data: {val} + {test} >= 1")
    check_int("seed", seed, 0)


def _split_sizes(n: int, val: float, test: float) -> tuple[int, int, int]:
    """(train, val, test) sizes of an unstratified split of ``n`` rows."""
    n_test, n_val = round(n * test), round(n * val)
    return n - n_val - n_test, n_val, n_test


def _enough_rows(n: int, val: float, test: float) -> bool:
    """Whether train, and val / test when asked for (> 0), each get at least one of ``n`` rows."""
    n_train, n_val, n_test = _split_sizes(n, val, test)
    return n_train >= 1 and (n_val >= 1 or val == 0) and (n_test >= 1 or test == 0)


def _min_rows(val: float, test: float, start: int = 1) -> int:
    """The fewest rows, ``start`` or more, that :func:`_enough_rows` accepts."""
    asked = [f for f in (val, test) if f > 0]
    n = max(start, int(0.5 / min(asked)) if asked else 1)  # round(n * f) >= 1 needs n * f > 0.5
    steps = 0
    while not _enough_rows(n, val, test):
        # exact in steps of 1; past 1,000 steps (f near 1e-300, where n * f stops moving in
        # float64 for steps of 1) steps grow with n, so the answer is close but always found
        n += 1 if steps < 1_000 else 1 + n // 1_000_000
        steps += 1
    return n


def _split_indices(n: int, val: float, test: float, seed: int, stratify: np.ndarray | None = None):
    """Shuffled (train, val, test) row indices; the arguments are checked by the caller."""
    rng = np.random.default_rng(seed)
    if stratify is None:
        n_train, n_val, n_test = _split_sizes(n, val, test)
        if not _enough_rows(n, val, test):
            raise ConfigError(
                f"{n} rows are too few for val={val}, test={test}: the split would be "
                f"train={n_train}, val={n_val}, test={n_test}; give at least "
                f"{_min_rows(val, test, n + 1)} rows, or smaller val / test (0 skips a split)"
            )
        order = rng.permutation(n)
        return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(stratify):
        idx = rng.permutation(np.flatnonzero(stratify == label))
        _, n_val, n_test = _split_sizes(len(idx), val, test)
        for part, chunk in zip(
            parts, (idx[n_test + n_val :], idx[n_test : n_test + n_val], idx[:n_test]), strict=True
        ):
            part.append(chunk)
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)


def _make_splits(
    X: torch.Tensor, y: torch.Tensor, extras: Mapping[str, torch.Tensor], idx
) -> list[Split]:
    """One Split per index array; each carries ``extras["index"]``, its rows in ``X``."""
    extras = {**extras, "index": torch.arange(len(y))}
    return [
        Split(X[i], y[i], {k: v[i] for k, v in extras.items()}) for i in map(torch.as_tensor, idx)
    ]


def digits(seed: int = 0, val: float = 0.15, test: float = 0.15, flat: bool = False) -> Dataset:
    """scikit-learn's bundled 8x8 digits, standardized with the training split's mean and std.

    Args:
        seed: fixes the (class-stratified) split.
        val, test: fractions held out for validation and test.
        flat: inputs of shape (64,) instead of (1, 8, 8).
    """
    from sklearn.datasets import load_digits

    _check_split_args(val, test, seed)
    bunch = load_digits()
    X = bunch.data.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    tr, va, te = _split_indices(len(y), val, test, seed, stratify=y)
    mean, std = float(X[tr].mean()), float(X[tr].std())
    X = (X - mean) / std
    shape = (64,) if flat else (1, 8, 8)
    Xt = torch.from_numpy(X).reshape(-1, *shape)
    splits = _make_splits(Xt, torch.from_numpy(y), {}, (tr, va, te))
    return Dataset(
        "digits",
        *splits,
        num_classes=10,
        input_shape=shape,
        info={"seed": seed, "mean": mean, "std": std},
    )


TASK_NAMES = ("presence", "majority", "first_last", "magnitude")


def tasks(
    n_per_task: int = 600,
    seq_len: int = 16,
    tokens_per_task: int = 12,
    n_tasks: int = 4,
    seed: int = 0,
    val: float = 0.15,
    test: float = 0.15,
) -> Dataset:
    """A synthetic multi-task token-sequence classification set (binary labels).

    Token 0 is padding-free filler shared by all tasks; tokens ``1..n_tasks`` are task markers;
    each task then owns ``tokens_per_task`` content tokens. A sequence is ``[marker, c1, ...]``
    and its label depends on the task, each needing a different feature:

    * ``presence`` — does the task's key token occur anywhere?
    * ``majority`` — are there more of token A than token B?
    * ``first_last`` — is the first content token equal to the last one?
    * ``magnitude`` — is the mean content-token rank in the upper half?

    Classes are balanced within each task. ``split.extras["task"]`` holds task ids.
    """
    if not 1 <= check_int("n_tasks", n_tasks) <= len(TASK_NAMES):
        raise ConfigError(f"n_tasks must be in 1..{len(TASK_NAMES)}, got {n_tasks}")
    check_int("seq_len (6 or more, so every task is expressible)", seq_len, 6)
    check_int("tokens_per_task", tokens_per_task, 4)
    check_int("n_per_task", n_per_task, 10)
    _check_split_args(val, test, seed)
    rng = np.random.default_rng(seed)
    L, K = seq_len - 1, tokens_per_task  # content length, content tokens per task
    xs, ys, ts = [], [], []
    for t in range(n_tasks):
        base = 1 + n_tasks + t * K  # first content token of this task
        labels = np.arange(n_per_task) % 2
        rng.shuffle(labels)
        content = rng.integers(0, K, size=(n_per_task, L))
        for row, label in zip(content, labels, strict=True):
            _shape_example(TASK_NAMES[t], row, int(label), K, rng)
        X = np.concatenate([np.full((n_per_task, 1), 1 + t), base + content], axis=1)
        xs.append(X)
        ys.append(labels)
        ts.append(np.full(n_per_task, t))
    X, y, task = (np.concatenate(a) for a in (xs, ys, ts))
    tr, va, te = _split_indices(len(y), val, test, seed, stratify=task * 2 + y)
    extras = {"task": torch.from_numpy(task.astype(np.int64))}
    splits = _make_splits(
        torch.from_numpy(X.astype(np.int64)),
        torch.from_numpy(y.astype(np.int64)),
        extras,
        (tr, va, te),
    )
    return Dataset(
        "tasks",
        *splits,
        num_classes=2,
        input_shape=(seq_len,),
        vocab_size=1 + n_tasks + n_tasks * K,
        info={"seed": seed, "task_names": TASK_NAMES[:n_tasks], "tokens_per_task": K},
    )


def _shape_example(
    task: str, row: np.ndarray, label: int, K: int, rng: np.random.Generator
) -> None:
    """Edits one content row in place so that it has ``label`` under ``task``."""
    L = len(row)
    if task == "presence":  # key token 0 present <=> label 1
        row[row == 0] = rng.integers(1, K, size=int((row == 0).sum()))
        if label:
            row[rng.choice(L, size=int(rng.integers(1, 3)), replace=False)] = 0
    elif task == "majority":  # count(token 0) > count(token 1) <=> label 1
        row[(row == 0) | (row == 1)] = rng.integers(2, K, size=int(((row == 0) | (row == 1)).sum()))
        lo, hi = sorted(rng.choice(np.arange(0, L // 2), size=2, replace=False))
        winner, loser = (0, 1) if label else (1, 0)
        pos = rng.permutation(L)
        row[pos[: hi + 1]] = winner
        row[pos[hi + 1 : hi + 1 + lo]] = loser
    elif task == "first_last":  # row[0] == row[-1] <=> label 1
        if label:
            row[-1] = row[0]
        elif row[-1] == row[0]:
            row[-1] = (row[0] + 1 + rng.integers(K - 1)) % K
    elif task == "magnitude":  # mean rank in the upper half <=> label 1
        half = K // 2
        row[:] = rng.integers(half, K, size=L) if label else rng.integers(0, half, size=L)
        flips = rng.choice(L, size=L // 4, replace=False)  # some noise that keeps the majority
        row[flips] = rng.integers(0, K, size=len(flips))
        mean_high = (row >= half).mean() > 0.5
        if bool(mean_high) != bool(label):
            row[flips] = (
                rng.integers(half, K, size=len(flips))
                if label
                else rng.integers(0, half, size=len(flips))
            )
    else:  # pragma: no cover - guarded by TASK_NAMES
        raise ConfigError(f"unknown task {task!r}")


def _numeric_array(name: str, values: Any) -> np.ndarray:
    """``values`` as a rectangular numeric numpy array, or a ShapeError / ConfigError."""
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
    return np.ascontiguousarray(array)


def from_arrays(
    X: Any,
    y: Any,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    name: str = "arrays",
    num_classes: int | None = None,
    extras: Mapping[str, Any] | None = None,
) -> Dataset:
    """Wraps the user's own arrays in a seeded train / val / test split.

    Args:
        X: (n, ...) numeric features; floats become float32, integers (and bools) become int64
            token ids, which must be >= 0.
        y: (n,) integer class labels 0..C-1 (map string labels to ints first, e.g. with
            ``np.unique(y, return_inverse=True)``).
        val, test: fractions held out; each asked-for split gets at least one row (fewer rows
            than that is a ConfigError naming the minimum).
        num_classes: defaults to ``max(y) + 1``.
        extras: per-example arrays carried along (for example ``{"task": ...}``); ``"index"``
            is taken: every split's ``extras["index"]`` holds the rows of ``X`` it got.
    """
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
    if yt.ndim != 1:
        raise ShapeError(f"y must be one label per row, shape (n,); got {tuple(yt.shape)}")
    if len(Xt) != len(yt):
        raise ShapeError(f"X has {len(Xt)} rows but y has {len(yt)}; they must match")
    if yt.is_floating_point() and not torch.equal(yt, yt.round()):
        raise ConfigError(
            "y must hold integer class labels; got non-integer floats (regression is not supported)"
        )
    yt = yt.long()
    if int(yt.min()) < 0:
        raise ConfigError(f"labels must be >= 0, got {int(yt.min())}")
    Xt = Xt.float() if Xt.is_floating_point() else Xt.long()
    if Xt.is_floating_point() and not torch.isfinite(Xt).all():
        raise ConfigError("X contains NaN or infinite values")
    if not Xt.is_floating_point() and int(Xt.min()) < 0:
        raise ConfigError(
            f"integer X is read as token ids, which must be >= 0 (they index an embedding); "
            f"got {int(Xt.min())}. Pass floats for real-valued features"
        )
    classes = int(yt.max()) + 1
    if num_classes is not None:
        if check_int("num_classes", num_classes, 1) < classes:
            raise ConfigError(f"num_classes={num_classes} but labels go up to {classes - 1}")
        classes = int(num_classes)
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
        info={"seed": seed},
    )
