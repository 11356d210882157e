"""Calibration inputs for static quantization, from whatever the user has at hand.

Accepted for now (the training layer's data adapter replaces this later): a nasviz ``Dataset``
(its train split), a ``Split``, a tensor of inputs, an ``(X, y)`` pair, or any iterable of
batches (tensors, ``(X, y)`` tuples or lists, or dicts with an ``"input"``/``"x"`` key).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from nasviz.errors import ConfigError, check_int

__all__ = ["calibration_batches"]


def _inputs(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, tuple | list) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    if isinstance(batch, Mapping):
        for key in ("input", "inputs", "x", "X", "input_ids"):
            if isinstance(batch.get(key), torch.Tensor):
                return batch[key]
    raise ConfigError(
        f"a calibration batch must be a tensor, an (inputs, labels) pair or a dict with an "
        f"'input' tensor; got {type(batch).__name__}"
    )


def calibration_batches(data: Any, samples: int = 512, batch_size: int = 128) -> list[torch.Tensor]:
    """Up to ``samples`` calibration inputs from ``data`` as a list of input batches.

    Raises:
        ConfigError: ``data`` is none of the accepted kinds, or holds no inputs.
    """
    check_int("samples (calibration examples)", samples, 1)
    if hasattr(data, "train") and hasattr(data, "val"):  # a Dataset: calibrate on train
        data = data.train
    if hasattr(data, "X") and hasattr(data, "y"):  # a Split
        data = data.X
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        data = data[0]
    if isinstance(data, torch.Tensor):
        if data.dim() == 0:
            raise ConfigError("calibration data must hold a batch of inputs, got a scalar tensor")
        data = data[:samples]
        source: Iterable[Any] = (data[i : i + batch_size] for i in range(0, len(data), batch_size))
    elif isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        source = data
    else:
        raise ConfigError(
            "calibration data must be a nasviz Dataset or Split, a tensor of inputs, an (X, y) "
            f"pair or an iterable of batches; got {type(data).__name__}"
        )
    out: list[torch.Tensor] = []
    seen = 0
    it: Iterator[Any] = iter(source)
    for batch in it:
        x = _inputs(batch)
        out.append(x[: samples - seen])
        seen += len(out[-1])
        if seen >= samples:
            break
    if not out or seen == 0:
        raise ConfigError("calibration data is empty; give at least one input")
    return out
