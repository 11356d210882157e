"""Calibration batches for Hugging Face models: whatever the user holds -> keyword batches.

Accepted: a nasviz ``Dataset`` (its train split) or ``Split`` (``X`` as the model's main input,
``y`` as ``labels``), a tensor of inputs, a dict of tensors (one batch, cut into ``batch_size``
rows), an iterable of batches (each a tensor, an ``(X,)`` / ``(X, y)`` tuple or a dict), and
through the training layer's data handling (:func:`nasviz.data.as_batches`) a torch
``DataLoader`` / ``Dataset`` or a Hugging Face ``datasets.Dataset`` / ``IterableDataset``
(its numeric columns; ``label`` becomes ``labels``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from nasviz.data._batches import as_batches
from nasviz.data._hf import is_hf
from nasviz.errors import ConfigError, check_int

__all__ = ["calibration_batches"]


def _rows(batch: Mapping[str, Any], batch_size: int) -> Iterator[dict[str, Any]]:
    """``batch`` cut into slices of ``batch_size`` rows (every tensor cut along dim 0)."""
    tensors = [v for v in batch.values() if isinstance(v, torch.Tensor) and v.dim() > 0]
    n = len(tensors[0]) if tensors else 0
    for start in range(0, n, batch_size):
        yield {
            k: v[start : start + batch_size] if isinstance(v, torch.Tensor) and v.dim() > 0 else v
            for k, v in batch.items()
        }


def calibration_batches(
    data: Any, input_name: str, *, batch_size: int = 8, max_batches: int | None = None
) -> Iterator[dict[str, Any]]:
    """Keyword batches ``{input_name: X, "labels": y, ...}`` for ``model(**batch)``.

    Args:
        data: see the module docstring.
        input_name: the model's main input keyword (``"input_ids"``, ``"pixel_values"``).
        batch_size: rows per batch where ``data`` is one block of rows.
        max_batches: stop after this many batches (None: all).

    Raises:
        ConfigError: ``data`` is none of the accepted kinds, or holds no rows.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    if max_batches is not None:
        check_int("max_batches", max_batches, 1)
    if hasattr(data, "train") and hasattr(data, "val"):  # a nasviz Dataset: calibrate on train
        data = data.train
    if hasattr(data, "X") and hasattr(data, "y"):  # a nasviz Split
        blocks: Iterable[Any] = _rows({input_name: data.X, "labels": data.y}, batch_size)
    elif (
        isinstance(data, DataLoader | TorchDataset)
        or is_hf(data, "Dataset")
        or is_hf(data, "IterableDataset")
    ):
        blocks = as_batches(
            data, default_batch_size=batch_size, split="train", what="calibration data"
        )
    elif isinstance(data, torch.Tensor):
        blocks = _rows({input_name: data}, batch_size)
    elif isinstance(data, Mapping):
        blocks = _rows(dict(data), batch_size)
    elif isinstance(data, Iterable) and not isinstance(data, str | bytes):
        blocks = data
    else:
        raise ConfigError(
            "calibration data must be a nasviz Dataset or Split, a tensor of inputs, a dict of "
            "tensors, a torch DataLoader or Dataset, a Hugging Face dataset or an iterable of "
            f"batches; got {type(data).__name__}"
        )
    count = 0
    for block in blocks:
        if isinstance(block, torch.Tensor):
            block = {input_name: block}
        elif isinstance(block, tuple | list) and len(block) in (1, 2):
            block = {input_name: block[0], **({"labels": block[1]} if len(block) == 2 else {})}
        if not isinstance(block, Mapping) or input_name not in block:
            raise ConfigError(
                f"each calibration batch must be a tensor, an (X, y) pair or a dict with {input_name!r}; "
                f"got {type(block).__name__}"
                + (f" with keys {sorted(block)}" if isinstance(block, Mapping) else "")
            )
        yield dict(block)
        count += 1
        if max_batches is not None and count >= max_batches:
            return
    if count == 0:
        raise ConfigError("the calibration data holds no rows")
