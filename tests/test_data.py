"""Built-in data: shapes, dtypes, splits, seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nasviz import ConfigError, ShapeError
from nasviz.data import Dataset, Split, digits, from_arrays, tasks


def _splits(d: Dataset) -> tuple[Split, Split, Split]:
    return d.train, d.val, d.test


def _assert_partition(d: Dataset, n: int) -> None:
    """The splits' row indices are disjoint and cover rows 0..n-1 exactly once."""
    parts = [set(s.extras["index"].tolist()) for s in _splits(d)]
    assert all(len(p) == len(s) for p, s in zip(parts, _splits(d), strict=True))  # no repeats
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(n))


def _assert_identical(a: Dataset, b: Dataset) -> None:
    """Every field equal, every tensor of every split equal (extras included)."""
    for f in dataclasses.fields(Dataset):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, Split):
            assert torch.equal(x.X, y.X) and torch.equal(x.y, y.y), f.name
            assert x.extras.keys() == y.extras.keys(), f.name
            assert all(torch.equal(x.extras[k], y.extras[k]) for k in x.extras), f.name
        else:
            assert x == y, f.name


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


def test_digits_splits_are_disjoint_by_index_and_trace_back():
    from sklearn.datasets import load_digits

    d, target = digits(seed=3), torch.from_numpy(load_digits().target)
    _assert_partition(d, 1797)
    for split in _splits(d):
        assert torch.equal(split.y, target[split.extras["index"]])


def test_tasks_splits_are_disjoint_by_index():
    t = tasks(n_per_task=50, seed=2)
    _assert_partition(t, 4 * 50)
    for split in _splits(t):  # generated task by task: rows 50k..50k+49 are task k
        assert torch.equal(split.extras["task"], split.extras["index"] // 50)


def test_from_arrays_splits_are_disjoint_by_index():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)).astype(np.float32), rng.integers(0, 4, size=50)
    d = from_arrays(X, y, val=0.2, test=0.2, seed=4)
    _assert_partition(d, 50)
    for split in _splits(d):
        rows = split.extras["index"].numpy()
        assert np.array_equal(split.X.numpy(), X[rows]) and np.array_equal(split.y.numpy(), y[rows])


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
    _assert_identical(tasks(n_per_task=60, seed=5), tasks(n_per_task=60, seed=5))
    assert not torch.equal(tasks(seed=5).train.X, tasks(seed=6).train.X)
    with pytest.raises(ConfigError, match="n_tasks must be in 1..4"):
        tasks(n_tasks=9)


def test_from_arrays_same_seed_same_data():
    rng = np.random.default_rng(1)
    X, y, task = rng.normal(size=(60, 4)), rng.integers(0, 3, size=60), rng.integers(0, 2, 60)
    a = from_arrays(X, y, seed=7, extras={"task": task})
    _assert_identical(a, from_arrays(X, y, seed=7, extras={"task": task}))
    other = from_arrays(X, y, seed=8, extras={"task": task})
    assert not torch.equal(a.val.extras["index"], other.val.extras["index"])


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
        (np.zeros((10, 2)), np.array(["cat", "dog"] * 5), {}, ConfigError, r"y must hold numbers .* np.unique"),
        (np.full((10, 2), "a"), np.zeros(10), {}, ConfigError, "X must hold numbers"),
        ([[1.0, 2.0], [3.0]], [0, 1], {}, ShapeError, r"X is ragged .* rectangular"),
        (np.array([[1, -2]] * 10), np.zeros(10), {}, ConfigError, r"token ids, which must be >= 0 .*; got -2"),
        (np.zeros((2, 2)), np.zeros(2), {}, ConfigError, r"2 rows are too few .* train=2, val=0, test=0; give at least 4 rows"),
        (np.zeros((2, 2)), np.zeros(2), {"val": 0, "test": 0.2}, ConfigError, "at least 3 rows"),
        (np.zeros((4, 2)), np.zeros(4), {"val": 0.45, "test": 0.45}, ConfigError, "train=0, val=2, test=2; give at least 5 rows"),
        (np.zeros((10, 2)), np.zeros(10), {"val": "0.2"}, ConfigError, r"val .* must be a number, got '0.2'"),
        (np.zeros((10, 2)), np.zeros(10), {"seed": -1}, ConfigError, "seed must be an int >= 0, got -1"),
        (np.zeros((10, 2)), np.zeros(10), {"num_classes": "3"}, ConfigError, "num_classes must be an int"),
        (np.zeros((10, 2)), np.zeros(10), {"extras": {"t": ["a"] * 10}}, ConfigError, "extra 't' must hold numbers"),
        (np.zeros((10, 2)), np.zeros(10), {"extras": {"index": np.zeros(10)}}, ConfigError, "may not be called 'index'"),
    ],
)  # fmt: skip
def test_from_arrays_bad_input(X, y, kwargs, error, needle):
    with pytest.raises(error, match=needle):
        from_arrays(X, y, **kwargs)


def test_a_tiny_fraction_names_the_rows_it_needs():
    # val=1e-7 needs 5,000,001 rows (round(n * val) >= 1); the minimum is found, not looped for
    with pytest.raises(ConfigError, match="give at least 5000001 rows"):
        from_arrays(np.zeros((10, 2)), np.zeros(10), val=1e-7, test=0)
    with pytest.raises(ConfigError, match="too few for val=1e-300"):  # finishes despite rounding
        from_arrays(np.zeros((10, 2)), np.zeros(10), val=1e-300, test=0)


def test_from_arrays_keeps_tiny_data_when_no_split_is_asked():
    d = from_arrays(np.zeros((2, 2)), np.array([0, 1]), val=0, test=0)
    assert (len(d.train), len(d.val), len(d.test)) == (2, 0, 0)
    d = from_arrays(np.zeros((4, 2)), np.array([0, 1, 0, 1]))  # the minimum for 0.15 / 0.15
    assert (len(d.train), len(d.val), len(d.test)) == (2, 1, 1)


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: digits(seed=-1), "seed must be an int >= 0, got -1"),
        (lambda: digits(seed="0"), r"seed must be an int >= 0, got '0' \(str\)"),
        (lambda: digits(val="0.2"), r"val \(a fraction\) must be a number, got '0.2'"),
        (lambda: digits(test=1.0), r"test fraction must be in \[0, 1\), got 1.0"),
        (lambda: tasks(n_tasks="4"), r"n_tasks must be an int, got '4' \(str\)"),
        (lambda: tasks(seq_len=4), "seq_len .* must be an int >= 6, got 4"),
        (lambda: tasks(n_per_task=20.0), "n_per_task must be an int >= 10, got 20.0"),
        (lambda: tasks(seed=1.5), "seed must be an int >= 0, got 1.5"),
    ],
)
def test_built_in_data_bad_arguments_are_config_errors(build, needle):
    with pytest.raises(ConfigError, match=needle):
        build()
