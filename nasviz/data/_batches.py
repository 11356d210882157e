"""One adapter for data in any form: :func:`as_batches` gives a :class:`Batches`.

Every caller that trains or evaluates (the training loop, supernet training, objectives,
re-calibration) turns its ``data`` argument into :class:`Batches` here, so every form works
everywhere:

==========================================  =====================================================
data                                        batches
==========================================  =====================================================
nasviz ``Dataset`` (its ``split``), ``Split``  ``(X, y)`` gathered in memory
``(X, y)`` / ``(X,)`` arrays or tensors     the same (numpy arrays become tensors)
a mapping of equal-length columns           dicts (``target`` renamed ``labels``)
pandas ``DataFrame`` with ``target=``       ``(X, y)``; X float32 from the numeric columns
torch ``TensorDataset``                     ``(X, y)`` gathered in memory
torch map-style ``Dataset``                 a DataLoader with nasviz's order
torch ``DataLoader``                        its own batches; nasviz's order when it uses the
                                            default samplers, else its own order
torch ``IterableDataset``                   streamed, batched by a DataLoader
Hugging Face ``datasets.Dataset``           dicts of its numeric columns, indexed per batch
Hugging Face ``datasets.IterableDataset``   streamed dicts
a list of batches, any re-iterable          as they are, streamed
==========================================  =====================================================

The order of an epoch depends only on ``(seed, epoch)``: the permutation is
``torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))``, so a
DataLoader over a TensorDataset and the tensors themselves give the same batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset
from torch.utils.data import Dataset as TorchDataset

from nasviz.data._arrays import frame_arrays
from nasviz.data._batch import is_batch
from nasviz.data._hf import hf_dataset, hf_iterable, is_hf, rename_target
from nasviz.data._sources import LoaderSource, MemorySource, Source, StreamSource
from nasviz.errors import ConfigError, ShapeError, check_int

__all__ = ["Batches", "as_batches"]

DEFAULT_BATCH_SIZE = 64
SPLITS = ("train", "val", "test")
FORMS = (
    "a nasviz Dataset or Split, (X, y) arrays or tensors, a pandas DataFrame with target=, a "
    "torch DataLoader / Dataset / IterableDataset, a Hugging Face datasets.Dataset, or a "
    "re-iterable of batches (tuples of tensors or dicts)"
)


def epoch_key(seed: int, epoch: int) -> int:
    """The number that seeds epoch ``epoch``'s order (the one supernet training always used)."""
    return seed * 100_003 + epoch


@dataclasses.dataclass(frozen=True)
class Batches:
    """Batches of one data source: re-iterable for epochs, in a seeded order, resumable.

    ``for batch in batches`` reads epoch 0; :meth:`epoch` reads any epoch from any batch on.
    Nothing is read until iteration starts, and a stream is read batch by batch.

    Contract: iterating never changes the source. Memory sources may be iterated from several
    threads at once; a DataLoader or stream is iterated by one thread at a time.

    Attributes:
        source: where the batches come from (``source.kind``: ``"memory"``, ``"loader"`` or
            ``"stream"``).
        shuffle: whether nasviz shuffles each epoch (None: a DataLoader's own sampler
            decides, or the stream's own order).
        seed: seeds the order of every epoch.
        task: what the data says its targets are (a nasviz Dataset's ``task``), else None.
        pin_memory: gathered batches are page-locked (for non-blocking copies to CUDA).
    """

    source: Source
    shuffle: bool | None = False
    seed: int = 0
    task: str | None = None
    pin_memory: bool = False

    @property
    def kind(self) -> str:
        return self.source.kind

    @property
    def batch_size(self) -> int | None:
        return self.source.batch_size

    @property
    def length(self) -> int | None:
        """Batches per epoch, None when the source does not know (a stream)."""
        return self.source.length()

    @property
    def num_examples(self) -> int | None:
        """Examples per epoch, None when unknown."""
        return self.source.num_examples()

    def __len__(self) -> int:
        n = self.length
        if n is None:
            raise TypeError("a stream of unknown length has no len(); see Batches.length")
        return n

    def __iter__(self) -> Iterator[Any]:
        return self.epoch(0)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Any]:
        """The batches of ``epoch`` from batch number ``start`` on (exact resume)."""
        order = self._order(epoch)
        return self.source.iterate(
            order, epoch, start, self.pin_memory, epoch_key(self.seed, epoch)
        )

    def _order(self, epoch: int) -> torch.Tensor | None:
        """The epoch's permutation of examples when nasviz shuffles, else None (in order)."""
        if not (self.shuffle and self.source.owns_order):
            return None
        key = epoch_key(self.seed, epoch)
        return torch.randperm(
            self.source.num_examples(), generator=torch.Generator().manual_seed(key)
        )

    def first(self) -> Any:
        """The first batch of epoch 0, for checks (ConfigError when there is none); a
        DataLoader's workers are not started for it."""
        if isinstance(self.source, LoaderSource):
            order = self._order(0)
            batches = self.source.iterate(order, 0, 0, False, epoch_key(self.seed, 0), False)
        else:
            batches = self.epoch(0)
        try:
            return next(batches)
        except StopIteration:
            raise ConfigError(
                f"the data yields no batches (a {self.kind} source"
                + (f" of {self.num_examples} examples" if self.num_examples is not None else "")
                + "); it must hold at least one batch"
            ) from None
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    @property
    def targets(self) -> torch.Tensor | None:
        """Every target at once when they are in memory (for checks up front), else None."""
        return getattr(self.source, "targets", None)

    def replace(self, **changes: Any) -> Batches:
        """A copy with other ``shuffle``, ``seed``, ``task`` or ``pin_memory``."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        n = self.length
        return (
            f"Batches({self.kind}, batches={'?' if n is None else n}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, seed={self.seed})"
        )


# ---- the adapter -------------------------------------------------------------------------
def _is_nasviz_dataset(data: Any) -> bool:
    return all(hasattr(data, a) for a in ("train", "val", "test", "num_classes"))


def _tensor(name: str, values: Any) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise ConfigError(f"{name} must hold numbers, got dtype {array.dtype}")
    return torch.from_numpy(np.require(array, requirements=["C", "W"]))


def _columns(values: tuple | list, what: str) -> tuple[torch.Tensor, ...] | None:
    """A tuple of arrays / tensors of equal length as columns, None when it is not one."""
    if not values or not all(
        isinstance(v, torch.Tensor | np.ndarray) and v.ndim >= 1 for v in values
    ):
        return None
    columns = tuple(_tensor(f"{what} item {i}", v) for i, v in enumerate(values))
    rows = [len(c) for c in columns]
    if len(set(rows)) > 1:
        raise ShapeError(
            f"{what}: the arrays of an (X, y) pair must have one row per example; they have "
            f"{rows} rows"
        )
    return columns


def _torch_iterable(data: IterableDataset, batch_size: int, drop_last: bool) -> StreamSource:
    def batched(stream: Any, pin_memory: bool) -> DataLoader:
        return DataLoader(stream, batch_size=batch_size, drop_last=drop_last, pin_memory=pin_memory)

    return StreamSource(data, batch_size, batched, _length(data, batch_size, drop_last))


def _length(data: Any, batch_size: int | None = None, drop_last: bool = False) -> int | None:
    """len() of a stream when it has one (in batches), else None; never indexes anything."""
    try:
        n = len(data)
    except TypeError:
        return None
    if batch_size is None:
        return n
    return n // batch_size if drop_last else -(-n // batch_size)


def _loader(data: DataLoader, batch_size: int | None, what: str) -> Source:
    from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

    if batch_size is not None and batch_size != data.batch_size:
        raise ConfigError(
            f"{what} is a DataLoader that already makes batches of {data.batch_size}; "
            f"batch_size={batch_size} conflicts with it: leave batch_size unset or rebuild the loader"
        )
    default = (
        not isinstance(data.dataset, IterableDataset)
        and data.batch_size is not None
        and type(data.batch_sampler) is BatchSampler
        and (
            type(data.sampler) is SequentialSampler
            or (
                type(data.sampler) is RandomSampler
                and not data.sampler.replacement
                and data.sampler._num_samples is None
            )
        )
    )
    if default:
        return LoaderSource(data)
    return StreamSource(data, data.batch_size, length=_length(data))


def _source(
    data: Any, batch_size: int | None, default_size: int, drop_last: bool, target: Any, what: str
) -> Source:
    """The source of ``data`` (anything but a nasviz Dataset, whose split the caller picked)."""
    size = default_size if batch_size is None else batch_size

    def memory(columns: Any) -> MemorySource:
        return MemorySource(columns, size, drop_last)

    if isinstance(data, DataLoader):
        return _loader(data, batch_size, what)
    if hasattr(data, "X") and hasattr(data, "y") and hasattr(data, "extras"):  # a Split
        return memory((data.X, data.y))
    if is_hf(data, "Dataset"):
        return hf_dataset(data, size, drop_last, target, what)
    if is_hf(data, "IterableDataset"):  # (before torch's: it may pose as one)
        return hf_iterable(data, size, target)
    if isinstance(data, TensorDataset):
        return memory(tuple(data.tensors))
    if isinstance(data, IterableDataset):
        return _torch_iterable(data, size, drop_last)
    if isinstance(data, TorchDataset) and hasattr(data, "__len__"):
        loader = DataLoader(data, batch_size=size, drop_last=drop_last)
        return LoaderSource(loader, user_loader=False)
    if type(data).__name__ == "DataFrame":
        X, y, _, _ = frame_arrays(data, target, None, None)
        return memory((torch.from_numpy(X), torch.from_numpy(y)))
    if isinstance(data, torch.Tensor | np.ndarray):
        return memory((_tensor(what, data),))
    if isinstance(data, tuple | list):
        columns = _columns(data, what)
        if columns is not None:
            return memory(columns)
        if data and is_batch(data[0]):
            if batch_size is not None:
                raise ConfigError(f"{what} is a list of batches already; leave batch_size unset")
            return StreamSource(data, length=len(data))
    elif isinstance(data, Mapping) and data:
        if all(isinstance(v, torch.Tensor | np.ndarray) for v in data.values()):
            cols = {k: _tensor(f"{what}[{k!r}]", v) for k, v in data.items()}
            rows = {k: len(v) for k, v in cols.items()}
            if len(set(rows.values())) > 1:
                raise ShapeError(f"{what}: columns must have one row per example; rows: {rows}")
            return memory(rename_target(cols, target, what))
    elif hasattr(data, "__iter__") and not isinstance(data, str | bytes):
        if iter(data) is data:
            raise ConfigError(
                f"{what} is a one-shot iterator ({type(data).__name__}): training and "
                "evaluation read data more than once. Pass a re-iterable (a list, a DataLoader, "
                "an object whose __iter__ starts over)"
            )
        if batch_size is not None:
            raise ConfigError(
                f"{what} ({type(data).__name__}) yields batches already; leave batch_size unset"
            )
        return StreamSource(data, length=_length(data))
    raise ConfigError(f"{what} must be {FORMS}; got {type(data).__name__}")


def as_batches(
    data: Any,
    *,
    batch_size: int | None = None,
    shuffle: bool | None = None,
    seed: int = 0,
    target: Any = None,
    split: str = "train",
    drop_last: bool = False,
    what: str = "data",
    default_batch_size: int = DEFAULT_BATCH_SIZE,
) -> Batches:
    """Data in any form as :class:`Batches` (see the module's table); reads nothing yet.

    Args:
        data: see the table above; a :class:`Batches` is returned as it is.
        batch_size: examples per batch for data nasviz batches itself (default
            ``default_batch_size``); a
            DataLoader or a list of batches keeps its own (a different value is an error).
        shuffle: None keeps the data's own choice (a DataLoader's sampler, a stream's order;
            data in memory in order); True shuffles every epoch in a seeded order (streams
            cannot be shuffled: shuffle them at the source).
        seed: seeds the order of every epoch (an int >= 0).
        target: a DataFrame's label column (required), or the label column of a mapping or
            Hugging Face dataset (default ``label`` / ``labels``), renamed ``labels``.
        split: which split of a nasviz Dataset (``"train"``, ``"val"`` or ``"test"``).
        drop_last: drop an epoch's last, smaller batch.
        what: how error messages name the data (``"training data"``, ``"accuracy data"``).
        default_batch_size: the batch size when ``batch_size`` is None (evaluation uses
            larger batches than training).

    Raises:
        ConfigError: data of no supported form, a one-shot iterator, bad arguments.
        ShapeError: columns of different lengths.
    """
    if isinstance(data, Batches):
        return data
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
    if shuffle not in (None, True, False):
        raise ConfigError(f"shuffle must be True, False or None, got {shuffle!r}")
    task = None
    if _is_nasviz_dataset(data):
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        task = getattr(data, "task", None)
        data = getattr(data, split)
    source = _source(data, batch_size, default_batch_size, bool(drop_last), target, what)
    if shuffle is None:
        shuffle = bool(source.own_shuffle)
    if shuffle and not source.owns_order:
        raise ConfigError(
            f"{what} is a stream ({type(data).__name__}) that nasviz reads in its own order "
            "and cannot shuffle; shuffle it at the source (seeded), or pass shuffle=None"
        )
    return Batches(source, bool(shuffle) if source.owns_order else None, int(seed), task)
