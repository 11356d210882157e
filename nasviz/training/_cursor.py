"""Where a training run is in its data: the next (epoch, batch) to read, and the epochs that
ended since the last look.

A :class:`DataCursor` reads batches from :class:`~nasviz.data.Batches` one at a time, crossing
epoch boundaries as they come, and moves each to the run's device. Its position is two ints
(saved in checkpoints); :meth:`DataCursor.seek` resumes there, reading from that very batch
on. It keeps an epoch's iterator open only while it reads that epoch (a DataLoader's worker
processes end with it) and :meth:`close` releases it at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from nasviz.data._batch import move
from nasviz.data._batches import Batches
from nasviz.errors import ConfigError

__all__ = ["DataCursor"]


class DataCursor:
    """The next batch of a run. Used by the run's thread only."""

    def __init__(
        self,
        batches: Batches,
        device: torch.device,
        check: Callable[[Any], None] | None = None,
    ):
        self.batches = batches
        self.device = device
        self.check = check  # called on each batch before it leaves the CPU
        self.length = batches.length
        self.epoch = self.batch = 0
        self._iter: Iterator[Any] | None = None
        self._ended: list[int] = []

    @property
    def position(self) -> list[int]:
        """``[epoch, batch]`` of the next batch to read."""
        return [self.epoch, self.batch]

    def seek(self, epoch: int, batch: int) -> None:
        """Reads from batch ``batch`` of epoch ``epoch`` on."""
        self.close()
        self.epoch, self.batch = int(epoch), int(batch)

    def __next__(self) -> Any:
        while True:
            if self._iter is None:
                self._iter = self.batches.epoch(self.epoch, self.batch)
            try:
                batch = next(self._iter)
            except StopIteration:
                if self.batch == 0:
                    raise ConfigError(
                        f"the training data yields no batches in epoch {self.epoch}"
                    ) from None
                self._end_epoch()
                continue
            self.batch += 1
            if self.length is not None and self.batch >= self.length:
                self._end_epoch()
            if self.check is not None:
                self.check(batch)
            return move(batch, self.device, non_blocking=self.batches.pin_memory)

    def _end_epoch(self) -> None:
        self.close()
        self._ended.append(self.epoch)
        self.epoch, self.batch = self.epoch + 1, 0

    def ended(self) -> list[int]:
        """The epochs that ended since the last call (0-based), oldest first."""
        ended, self._ended = self._ended, []
        return ended

    @property
    def last_epoch(self) -> int:
        """The epoch of the batch read last."""
        return self._ended[-1] if self._ended else self.epoch

    def close(self) -> None:
        """Releases the open epoch's iterator (and a DataLoader's workers)."""
        close = getattr(self._iter, "close", None)
        if close is not None:
            close()
        self._iter = None
