"""The user's tables and files: from_frame / from_files give from_arrays' seeded, traceable
splits, classification or regression; bad values are named with where they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nasviz import ConfigError, ShapeError
from nasviz.data import from_arrays, from_files, from_frame


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50, 10, n),
            "smoker": rng.integers(0, 2, n).astype(bool),
            "label": rng.choice(["high", "low", "mid"], n),
            "price": rng.normal(100, 20, n),
        }
    )


def _same(a, b) -> bool:
    return all(
        torch.equal(getattr(a, s).X, getattr(b, s).X)
        and torch.equal(getattr(a, s).y, getattr(b, s).y)
        and torch.equal(getattr(a, s).extras["index"], getattr(b, s).extras["index"])
        for s in ("train", "val", "test")
    )


def test_a_frame_splits_like_its_arrays():
    df = _frame()
    d = from_frame(df, "label", features=["age", "income", "smoker"], seed=3)
    codes = pd.factorize(df["label"], sort=True)[0]
    X = df[["age", "income", "smoker"]].to_numpy(dtype=np.float32)
    assert _same(d, from_arrays(X, codes, seed=3))
    assert d.task == "classification" and d.num_classes == 3
    assert d.info["classes"] == ["high", "low", "mid"] and d.info["columns"] == [
        "age",
        "income",
        "smoker",
    ]
    rows = d.val.extras["index"].numpy()  # traced back to the frame's rows
    assert [d.info["classes"][c] for c in d.val.y.tolist()] == df["label"].iloc[rows].tolist()
    assert d.train.X.dtype == torch.float32  # integer columns are features, not token ids


def test_regression_targets():
    df = _frame()
    d = from_frame(df, "price", features=["age", "income"], task="regression", seed=1)
    assert d.task == "regression" and d.num_classes == 1 and d.train.y.dtype == torch.float32
    assert torch.allclose(
        d.val.y,
        torch.tensor(df["price"].to_numpy()[d.val.extras["index"].numpy()], dtype=torch.float32),
    )
    two = from_frame(df, ["price", "income"], features=["age"], task="regression")
    assert two.num_classes == 2 and two.train.y.shape[1] == 2
    with pytest.raises(ConfigError, match=r"non-integer floats .* pass task='regression'"):
        from_frame(df, "price", features=["age"])


def test_files_read_like_their_frame(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "table.csv", index=False)
    df.to_parquet(tmp_path / "table.parquet")
    reference = from_frame(df, "label", seed=2, name="table")
    for name in ("table.csv", "table.parquet"):
        d = from_files(tmp_path / name, "label", seed=2)
        assert _same(d, reference) and d.name == "table"
        assert d.info["files"] == [(str(tmp_path / name), 60)]
    parts = tmp_path / "parts"
    parts.mkdir()
    df.iloc[:25].to_csv(parts / "a.csv", index=False)
    df.iloc[25:].to_csv(parts / "b.csv", index=False)
    d = from_files(parts / "*.csv", "label", seed=2)
    assert _same(d, reference) and [n for _, n in d.info["files"]] == [25, 35]


def test_npy_and_npz_files(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 4)).astype(np.float32), rng.integers(0, 3, 50)
    reference = from_arrays(X, y, seed=4)
    np.save(tmp_path / "table.npy", np.column_stack([X, y]))
    assert _same(from_files(tmp_path / "table.npy", target=4, seed=4), reference)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    assert _same(from_files(tmp_path / "X.npy", target=tmp_path / "y.npy", seed=4), reference)
    np.savez(tmp_path / "both.npz", inputs=X, labels=y)
    assert _same(from_files(tmp_path / "both.npz", target="labels", seed=4), reference)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):  # nothing in a file runs code
        from_files(tmp_path / "objects.npy", target=0)


@pytest.mark.parametrize(
    ("call", "error", "needle"),
    [
        (lambda df, p: from_frame(df, "missing"), ConfigError, r"target 'missing' is not a column .* \['age', 'income', 'smoker', 'label', 'price'\]"),
        (lambda df, p: from_frame(df.assign(city="x"), "label"), ConfigError, r"'city' \((object|str)\) are not: encode them first, e.g. pd.get_dummies"),
        (lambda df, p: from_frame(df.assign(label=None), "label"), ConfigError, "60 missing labels"),
        (lambda df, p: from_frame(df, ["price", "age"]), ConfigError, "several target columns need task='regression'"),
        (lambda df, p: from_frame(df.assign(income=np.nan), "label"), ConfigError, r"X contains 60 NaN .* in 60 rows \(rows 0, 1, 2, 3, 4, \.\.\.; columns 'income'\)"),
        (lambda df, p: from_frame([1, 2], "label"), ConfigError, "expected a pandas DataFrame"),
        (lambda df, p: from_files(p / "none.csv", "label"), ConfigError, "no data files at"),
        (lambda df, p: from_files(p / "t.txt", "label"), ConfigError, "supported files are .csv"),
        (lambda df, p: from_files(p / "t.npy", 9), ConfigError, r"target=9 must be a column of a 2-D array; .* shape \(3, 2\)"),
    ],
)  # fmt: skip
def test_bad_tables_and_files(tmp_path, call, error, needle):
    (tmp_path / "t.txt").write_text("a,b\n1,2\n")
    np.save(tmp_path / "t.npy", np.zeros((3, 2)))
    with pytest.raises(error, match=needle):
        call(_frame(), tmp_path)


def test_non_finite_values_are_counted_and_located():
    X = np.zeros((20, 3), dtype=np.float32)
    X[4, 1] = np.nan
    X[9, 2] = np.inf
    X[9, 1] = -np.inf
    with pytest.raises(
        ConfigError,
        match=r"X contains 3 NaN or infinite values in 2 rows \(rows 4, 9; columns 1, 2\)",
    ):
        from_arrays(X, np.zeros(20))
    images = np.zeros((10, 1, 4, 4), dtype=np.float32)
    images[7, 0, 2, 3] = np.nan
    with pytest.raises(
        ConfigError,
        match=r"1 NaN or infinite value in 1 row \(rows 7; first positions \(row, \.\.\.\) \[\(7, 0, 2, 3\)\]\)",
    ):
        from_arrays(images, np.zeros(10))
    with pytest.raises(
        ShapeError, match=r"regression targets must have shape \(n,\) or \(n, outputs\)"
    ):
        from_arrays(np.zeros((10, 2)), np.zeros((10, 2, 2)), task="regression")


def test_containers_are_not_arrays():
    from torch.utils.data import DataLoader, TensorDataset

    tensors = TensorDataset(torch.zeros(4, 2), torch.zeros(4))
    for container in (tensors, DataLoader(tensors)):
        with pytest.raises(
            ConfigError,
            match=r"from_arrays takes arrays .* take a DataLoader or a torch Dataset as it is",
        ):
            from_arrays(container, np.zeros(4))
