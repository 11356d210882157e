"""Datasets held in memory: :class:`Split` and :class:`Dataset`, and their seeded splits.

Every dataset is a :class:`Dataset`: three :class:`Split` s (train / val / test) of tensors with
a fixed, seeded split, plus what a model needs to know (its task, number of classes or outputs,
input shape, vocabulary size for token data). The splits are disjoint; ``split.extras["index"]``
holds each example's row in the full data, so any example can be traced back to where it came
from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from nasviz.errors import ConfigError, ShapeError, check_int, check_real

__all__ = ["TASKS", "Dataset", "Split"]

#: What a dataset's targets are: class labels, or real values to regress.
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Split:
    """One split: inputs ``X``, targets ``y`` (integer class labels, or float values for
    regression) and optional per-example ``extras`` (for example ``task`` ids; built datasets
    always carry ``index``) that line up with ``y``."""

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
        num_classes: classes for classification; values per example (the model's outputs)
            for regression.
        input_shape: shape of one example (without the batch dimension).
        vocab_size: number of distinct tokens for token data, else None.
        info: free-form facts (task names, normalization constants, seed, source files).
        task: ``"classification"`` (integer labels) or ``"regression"`` (float targets).
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    vocab_size: int | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    task: str = "classification"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {self.task!r}")

    def __repr__(self) -> str:
        sizes = f"train={len(self.train)}, val={len(self.val)}, test={len(self.test)}"
        what = (
            f"classes={self.num_classes}"
            if self.task == "classification"
            else f"regression, outputs={self.num_classes}"
        )
        return f"Dataset({self.name!r}, {sizes}, {what}, input_shape={self.input_shape})"


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
