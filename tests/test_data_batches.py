"""as_batches: every data form, one batch convention, seeded epochs, exact resume."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from nasviz import ConfigError
from nasviz.data import Batches, as_batches, digits


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


X = torch.arange(50, dtype=torch.float32).reshape(25, 2)
Y = torch.arange(25) % 3


class _Rows(Dataset):
    """A map-style dataset that is not a TensorDataset."""

    def __len__(self):
        return 25

    def __getitem__(self, i):
        return X[i], Y[i]


FORMS = {
    "tensors": lambda: as_batches((X, Y), batch_size=4, shuffle=True, seed=3),
    "numpy": lambda: as_batches((X.numpy(), Y.numpy()), batch_size=4, shuffle=True, seed=3),
    "tensordataset": lambda: as_batches(TensorDataset(X, Y), batch_size=4, shuffle=True, seed=3),
    "dataset": lambda: as_batches(_Rows(), batch_size=4, shuffle=True, seed=3),
    "loader": lambda: as_batches(
        DataLoader(TensorDataset(X, Y), batch_size=4, shuffle=True), seed=3
    ),
    "persistent-workers": lambda: as_batches(
        DataLoader(
            TensorDataset(X, Y), batch_size=4, shuffle=True, num_workers=1, persistent_workers=True
        ),
        seed=3,
    ),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_indexable_form_gives_the_same_seeded_batches(form):
    batches = FORMS[form]()
    reference = FORMS["tensors"]()
    assert len(batches) == 7 and batches.num_examples == 25 and batches.shuffle
    for epoch in (0, 1):
        got, expected = list(batches.epoch(epoch)), list(reference.epoch(epoch))
        assert all(_equal(a, b) for a, b in zip(got, expected, strict=True))
        assert all(
            _equal(a, b) for a, b in zip(batches.epoch(epoch, start=5), got[5:], strict=True)
        )
    first, second = (torch.cat([y for _, y in batches.epoch(e)]) for e in (0, 1))
    assert sorted(first.tolist()) == sorted(Y.tolist()) and not torch.equal(first, second)
    assert _equal(next(iter(batches)), next(iter(batches)))  # re-iterable: epoch 0 again


def test_a_loader_keeps_its_own_choices_unless_told():
    in_order = as_batches(DataLoader(TensorDataset(X, Y), batch_size=10))
    assert in_order.shuffle is False and [len(y) for _, y in in_order] == [10, 10, 5]
    assert torch.equal(torch.cat([y for _, y in in_order]), Y)
    dropped = as_batches(DataLoader(TensorDataset(X, Y), batch_size=10, drop_last=True))
    assert len(dropped) == 2
    assert as_batches(DataLoader(TensorDataset(X, Y), batch_size=10), shuffle=True).shuffle
    with pytest.raises(ConfigError, match="already makes batches of 10; batch_size=4 conflicts"):
        as_batches(DataLoader(TensorDataset(X, Y), batch_size=10), batch_size=4)


def test_a_loader_with_its_own_sampler_is_read_in_its_order():
    weighted = torch.utils.data.WeightedRandomSampler(
        torch.ones(25), 12, generator=torch.Generator().manual_seed(0)
    )
    loader = DataLoader(TensorDataset(X, Y), batch_size=4, sampler=weighted)
    batches = as_batches(loader)
    assert batches.kind == "stream" and batches.length == 3
    assert [len(y) for _, y in batches] == [4, 4, 4]


def test_streams_are_read_in_order_and_resume_by_skipping():
    class Count(IterableDataset):
        def __init__(self):
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __iter__(self):
            for i in range(10):
                yield torch.tensor([float(i)]), torch.tensor(i % 2)

    stream = Count()
    batches = as_batches(stream, batch_size=3)
    assert batches.kind == "stream" and batches.length is None and batches.shuffle is None
    assert [x.flatten().tolist() for x, _ in batches.epoch(2, start=2)] == [[6.0, 7.0, 8.0], [9.0]]
    assert stream.epochs == [2]  # set_epoch is called where the stream offers it
    with pytest.raises(TypeError, match="no len"):
        len(batches)


def test_lists_mappings_and_hugging_face_datasets():
    pairs = [(X[:5], Y[:5]), (X[5:], Y[5:])]
    assert as_batches(pairs).length == 2 and _equal(next(iter(as_batches(pairs))), pairs[0])
    columns = as_batches({"input_ids": X.long(), "label": Y}, batch_size=10)
    assert list(next(iter(columns))) == ["input_ids", "labels"]  # HF's name for the targets
    table = datasets.Dataset.from_dict(
        {"input_ids": X.long().tolist(), "label": Y.tolist(), "text": ["a"] * 25}
    )
    hf = as_batches(table, batch_size=10, shuffle=True, seed=1)
    batch = next(iter(hf))
    assert set(batch) == {"input_ids", "labels"} and batch["input_ids"].shape == (10, 2)
    assert torch.equal(hf.targets, Y)
    streamed = as_batches(table.to_iterable_dataset(), batch_size=10)
    assert streamed.kind == "stream" and [len(b["labels"]) for b in streamed] == [10, 10, 5]


def test_a_nasviz_dataset_gives_the_split_asked_for():
    data = digits()
    assert as_batches(data).num_examples == len(data.train)
    assert as_batches(data, split="val").num_examples == len(data.val)
    assert as_batches(data, split="val").task == "classification"
    with pytest.raises(ConfigError, match="split must be one of"):
        as_batches(data, split="dev")


def test_first_and_empty_data():
    assert _equal(as_batches((X, Y), batch_size=4).first(), (X[:4], Y[:4]))
    with pytest.raises(ConfigError, match="yields no batches"):
        as_batches((X[:0], Y[:0])).first()
    assert isinstance(as_batches(as_batches((X, Y))), Batches)
    with pytest.raises(ConfigError, match="list of batches already"):
        as_batches([(X, Y)], batch_size=3)
    with pytest.raises(ConfigError, match="data must be .* got int"):
        as_batches(3)
    assert as_batches(np.zeros((4, 2))).length == 1  # inputs without targets
