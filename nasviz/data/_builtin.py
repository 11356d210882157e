"""Built-in datasets that need no download.

* :func:`digits` — scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes).
* :func:`tasks` — a synthetic multi-task token-sequence classification set whose tasks need
  different features (presence, counting, comparing positions, magnitude); used to show
  mixture-of-experts routing specializing by task.
"""

from __future__ import annotations

import numpy as np
import torch

from nasviz.data._dataset import Dataset, _check_split_args, _make_splits, _split_indices
from nasviz.errors import ConfigError, check_int

__all__ = ["TASK_NAMES", "digits", "tasks"]


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


#: The tasks of :func:`tasks`, in task-id order (see its docstring for what each asks).
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
