"""Built-in data: shapes, dtypes, splits, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasviz import ConfigError, ShapeError
from nasviz.data import digits, from_arrays, tasks


def test_digits_shapes_splits_and_normalization():
    d = digits()
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert d.train.X.shape[1:] == (1, 8, 8) and d.train.X.dtype == torch.float32
    assert d.train.y.dtype == torch.int64
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    assert abs(len(d.val) - 0.15 * 1797) < 12
    assert abs(float(d.train.X.mean())) < 1e-4 and abs(float(d.train.X.std()) - 1) < 1e-3
    assert set(d.val.y.tolist()) == set(range(10))  # stratified: every class in val
    flat = digits(flat=True)
    assert flat.input_shape == (64,) and flat.train.X.shape[1:] == (64,)


def test_digits_seed_fixes_the_split():
    a, b, c = digits(seed=1), digits(seed=1), digits(seed=2)
    assert torch.equal(a.val.X, b.val.X) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.val.X, c.val.X)
    _train, val, test = (
        set(map(tuple, s.X.reshape(len(s), -1).tolist())) for s in (a.train, a.val, a.test)
    )
    assert not (val & test)  # disjoint (digits has a few duplicate images, hence val vs test)


def test_loader_batches_and_seeded_shuffle():
    d = digits()
    batches = list(d.train.loader(batch_size=100))
    assert sum(len(y) for _, y in batches) == len(d.train) and len(batches[0][1]) == 100
    first = lambda seed: next(iter(d.train.loader(32, shuffle=True, seed=seed)))[1]  # noqa: E731
    assert torch.equal(first(3), first(3)) and not torch.equal(first(3), first(4))
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        d.train.loader(0)


def test_tasks_structure_and_balance():
    t = tasks(n_per_task=200, seq_len=12, seed=0)
    assert t.num_classes == 2 and t.input_shape == (12,)
    assert t.train.X.dtype == torch.int64
    assert int(t.train.X.max()) < t.vocab_size
    task = torch.cat([t.train.extras["task"], t.val.extras["task"], t.test.extras["task"]])
    y = torch.cat([t.train.y, t.val.y, t.test.y])
    X = torch.cat([t.train.X, t.val.X, t.test.X])
    assert torch.equal(X[:, 0], task + 1)  # a task marker leads every sequence
    for k in range(4):
        assert int((task == k).sum()) == 200
        assert int(y[task == k].sum()) == 100  # balanced labels per task
    assert t.info["task_names"] == ("presence", "majority", "first_last", "magnitude")


def test_tasks_labels_follow_their_rules():
    t = tasks(n_per_task=300, seed=3)
    K = t.info["tokens_per_task"]
    X, y, task = t.train.X, t.train.y, t.train.extras["task"]
    for k in range(4):
        base = 1 + 4 + k * K
        content = X[task == k, 1:] - base
        labels = y[task == k]
        assert ((content >= 0) & (content < K)).all()  # each task uses its own tokens
        if k == 0:
            rule = (content == 0).any(1)
        elif k == 1:
            rule = (content == 0).sum(1) > (content == 1).sum(1)
        elif k == 2:
            rule = content[:, 0] == content[:, -1]
        else:
            rule = (content >= K // 2).float().mean(1) > 0.5
        assert torch.equal(rule.long(), labels), t.info["task_names"][k]


def test_tasks_same_seed_same_data():
    assert torch.equal(tasks(seed=5).train.X, tasks(seed=5).train.X)
    assert not torch.equal(tasks(seed=5).train.X, tasks(seed=6).train.X)
    with pytest.raises(ConfigError, match="n_tasks must be in 1..4"):
        tasks(n_tasks=9)


def test_from_arrays_wraps_user_data(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 5)), rng.integers(0, 3, size=100)
    np.savez(tmp_path / "mine.npz", X=X, y=y)
    loaded = np.load(tmp_path / "mine.npz", allow_pickle=False)
    d = from_arrays(loaded["X"], loaded["y"], val=0.2, test=0.1, seed=1)
    assert d.train.X.dtype == torch.float32 and d.input_shape == (5,) and d.num_classes == 3
    assert (len(d.train), len(d.val), len(d.test)) == (70, 20, 10)
    tokens = from_arrays(
        rng.integers(0, 9, size=(40, 6)), rng.integers(0, 2, size=40), extras={"task": np.zeros(40)}
    )
    assert tokens.train.X.dtype == torch.int64 and tokens.vocab_size <= 9
    assert len(tokens.train.extras["task"]) == len(tokens.train)


@pytest.mark.parametrize(
    ("X", "y", "kwargs", "error", "needle"),
    [
        (np.zeros((10, 2)), np.zeros(9), {}, ShapeError, "X has 10 rows but y has 9"),
        (np.zeros((10, 2)), np.zeros((10, 2)), {}, ShapeError, "one label per row"),
        (np.zeros((10, 2)), np.full(10, 0.5), {}, ConfigError, "integer class labels"),
        (np.zeros((10, 2)), -np.ones(10), {}, ConfigError, "labels must be >= 0"),
        (np.full((10, 2), np.nan), np.zeros(10), {}, ConfigError, "NaN"),
        (
            np.zeros((10, 2)),
            np.zeros(10),
            {"val": 0.6, "test": 0.5},
            ConfigError,
            "must leave training data",
        ),
        (
            np.zeros((10, 2)),
            np.arange(10) % 3,
            {"num_classes": 2},
            ConfigError,
            "labels go up to 2",
        ),
        (
            np.zeros((10, 2)),
            np.zeros(10),
            {"extras": {"task": np.zeros(3)}},
            ShapeError,
            "extra 'task' has 3 rows",
        ),
    ],
)
def test_from_arrays_bad_input(X, y, kwargs, error, needle):
    with pytest.raises(error, match=needle):
        from_arrays(X, y, **kwargs)
