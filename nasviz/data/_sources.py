"""Where batches come from: memory, a DataLoader nasviz re-orders, or a stream read as it is.

Three kinds of source, each able to start an epoch at any batch (exact resume):

* :class:`MemorySource` — columns of tensors (or a Hugging Face ``datasets.Dataset``, indexed a
  batch at a time and never copied whole): nasviz gathers each batch by index.
* :class:`LoaderSource` — a torch DataLoader over a map-style dataset with the default
  samplers: its dataset, collate function, workers and pinning are kept; nasviz gives it the
  epoch's order through a sampler, starting at the resumed batch.
* :class:`StreamSource` — anything nasviz cannot index (an IterableDataset, a DataLoader with
  its own sampler, a list of batches, any re-iterable): read in its own order; resuming in the
  middle of an epoch skips the batches already seen (reading them, training nothing).
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader

from nasviz.data._batch import LABELS, pin

__all__ = ["LoaderSource", "MemorySource", "Source", "StreamSource"]


class Source(ABC):
    """One kind of data. ``owns_order``: nasviz decides the order (and can shuffle)."""

    kind: str = ""
    owns_order: bool = False
    own_shuffle: bool | None = None  # the data's own choice (a DataLoader's sampler), if any
    batch_size: int | None = None

    @abstractmethod
    def length(self) -> int | None:
        """Batches per epoch, None when unknown."""

    def num_examples(self) -> int | None:
        """Examples per epoch, None when unknown."""
        return None

    @abstractmethod
    def iterate(
        self, order: torch.Tensor | None, epoch: int, start: int, pin_memory: bool, key: int
    ) -> Iterator[Any]:
        """The batches of ``epoch`` from batch ``start`` on; ``order`` is the epoch's permutation
        of examples when the source owns its order and shuffles (None: in order); ``key`` is
        the (seed, epoch) number that seeds anything random the source does."""


def _rows(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


class MemorySource(Source):
    """Columns of equal length, gathered a batch at a time.

    Args:
        columns: a tuple of tensors (batches are tuples) or a mapping name -> tensor (batches
            are dicts); or None with ``gather`` and ``n``.
        gather: ``gather(indices) -> batch`` for sources indexed otherwise (Hugging Face
            datasets: one ``dataset[indices]`` per batch, nothing copied whole).
    """

    kind = "memory"
    owns_order = True

    def __init__(
        self,
        columns: tuple[torch.Tensor, ...] | Mapping[str, torch.Tensor] | None,
        batch_size: int,
        drop_last: bool = False,
        gather: Callable[[torch.Tensor], Any] | None = None,
        n: int | None = None,
        targets: torch.Tensor | None = None,
    ):
        self.columns = columns
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._gather = gather
        if columns is not None:
            first = next(iter(columns.values() if isinstance(columns, Mapping) else columns))
            n = len(first)
            if targets is None:
                targets = (
                    columns.get(LABELS)
                    if isinstance(columns, Mapping)
                    else (columns[1] if len(columns) > 1 else None)
                )
        self.n = int(n or 0)
        self.targets = targets

    def length(self) -> int:
        return _rows(self.n, self.batch_size, self.drop_last)

    def num_examples(self) -> int:
        return self.n

    def _take(self, idx: torch.Tensor | slice) -> Any:
        if self._gather is not None:
            if isinstance(idx, slice):
                idx = torch.arange(idx.start, min(idx.stop, self.n))
            return self._gather(idx)
        if isinstance(self.columns, Mapping):
            return {k: v[idx] for k, v in self.columns.items()}
        return tuple(c[idx] for c in self.columns)

    def iterate(
        self, order: torch.Tensor | None, epoch: int, start: int, pin_memory: bool, key: int
    ) -> Iterator[Any]:
        bs = self.batch_size
        for b in range(start, self.length()):
            lo, hi = b * bs, (b + 1) * bs
            batch = self._take(order[lo:hi] if order is not None else slice(lo, hi))
            yield pin(batch) if pin_memory else batch


class LoaderSource(Source):
    """A DataLoader over a map-style dataset with the default samplers, re-ordered by nasviz.

    Each epoch gets a new loader like the user's, with the epoch's order as its sampler; with
    ``persistent_workers=True`` one loader is kept (its workers with it) and only its order
    changes. Workers' random seeds come from (seed, epoch) without persistent workers.
    """

    kind = "loader"
    owns_order = True

    def __init__(self, loader: DataLoader, user_loader: bool = True):
        from torch.utils.data import RandomSampler

        self.loader = loader
        if user_loader:  # the user's loader chose; one nasviz made around a Dataset did not
            self.own_shuffle = isinstance(loader.sampler, RandomSampler)
        self.batch_size = loader.batch_size
        self.drop_last = loader.drop_last
        self.n = len(loader.dataset)
        self._kept: DataLoader | None = None  # the loader kept when workers persist

    def length(self) -> int:
        return _rows(self.n, self.batch_size, self.drop_last)

    def num_examples(self) -> int:
        return self.n

    def iterate(
        self,
        order: torch.Tensor | None,
        epoch: int,
        start: int,
        pin_memory: bool,
        key: int,
        workers: bool = True,
    ) -> Iterator[Any]:
        """As :meth:`Source.iterate`; ``workers=False`` reads in this process (a peek at the
        first batch need not start worker processes)."""
        first = start * self.batch_size
        indices = order[first:].tolist() if order is not None else list(range(first, self.n))
        workers = self.loader.num_workers if workers else 0
        if workers and self.loader.persistent_workers:  # one loader, its workers kept
            if self._kept is None or self._kept.pin_memory != (
                self.loader.pin_memory or pin_memory
            ):
                self._kept = self._build(_Order(), workers, pin_memory, key)
            self._kept.sampler.indices = indices  # read when an epoch's iteration starts
            yield from self._kept
            return
        yield from self._build(indices, workers, pin_memory, key)

    def _build(self, sampler: Any, workers: int, pin_memory: bool, key: int) -> DataLoader:
        """A loader like the user's with ``sampler`` (their dataset, collate, workers, pinning)."""
        old = self.loader
        return DataLoader(
            old.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=old.collate_fn,
            pin_memory=old.pin_memory or pin_memory,
            drop_last=self.drop_last,
            timeout=old.timeout,
            worker_init_fn=old.worker_init_fn,
            multiprocessing_context=old.multiprocessing_context if workers else None,
            generator=torch.Generator().manual_seed(key),  # workers' seeds: fixed per epoch
            prefetch_factor=old.prefetch_factor if workers else None,
            persistent_workers=bool(workers) and old.persistent_workers,
        )


class _Order:
    """A sampler whose indices change every epoch (a loader with persistent workers reads it
    in the main process when each epoch's iteration starts)."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _set_epoch(things: Iterable[Any], epoch: int) -> None:
    """Calls ``set_epoch(epoch)`` where a stream offers it (samplers, HF iterable datasets)."""
    for thing in things:
        set_epoch = getattr(thing, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)


class StreamSource(Source):
    """Batches read in the stream's own order, never indexed and never held whole.

    Args:
        stream: a re-iterable of batches; or, with ``batch`` given, of single examples.
        batch: ``batch(stream, pin_memory) -> re-iterable of batches`` that groups examples.
        length: batches per epoch when known.
    """

    kind = "stream"

    def __init__(
        self,
        stream: Iterable[Any],
        batch_size: int | None = None,
        batch: Callable[[Any, bool], Iterable[Any]] | None = None,
        length: int | None = None,
    ):
        self.stream = stream
        self.batch_size = batch_size
        self._batch = batch
        self._length = length

    def length(self) -> int | None:
        return self._length

    def iterate(
        self, order: torch.Tensor | None, epoch: int, start: int, pin_memory: bool, key: int
    ) -> Iterator[Any]:
        stream = self.stream
        parts = [stream, getattr(stream, "sampler", None), getattr(stream, "dataset", None)]
        _set_epoch((p for p in parts if p is not None), epoch)
        batches = self._batch(stream, pin_memory) if self._batch is not None else stream
        for batch in itertools.islice(iter(batches), start, None):
            yield pin(batch) if pin_memory and self._batch is None else batch
