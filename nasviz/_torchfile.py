"""Reading ``torch.save`` files safely, and saying in words why one could not be read.

Every torch file nasviz reads (supernet checkpoints, training checkpoints) goes through
:func:`read_torch_file`: ``torch.load(..., weights_only=True)``, so nothing in the file runs.
When that fails, :func:`unreadable_reason` says why without passing on torch's advice to retry
with ``weights_only=False`` (which would run code from the file: never give that advice).
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import torch

__all__ = ["read_torch_file", "unreadable_reason"]


def read_torch_file(path: str | Path) -> Any:
    """The object a ``torch.save`` file at ``path`` holds, read onto the CPU with
    ``weights_only=True`` (tensors and plain containers only)."""
    with open(path, "rb") as f:
        return torch.load(f, map_location="cpu", weights_only=True)


def unreadable_reason(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in words, without torch's advice to
    retry with ``weights_only=False``."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:  # a pickle of other objects, or not a pickle at all
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        detail = detail.split(" was not an allowed global")[0].split(". ")[0].strip()  # no advice
        return f"it holds data other than tensors and plain containers ({detail})"
    corrupt_zip = isinstance(exc, OSError) and exc.errno == errno.EINVAL  # torch's zip reader
    if corrupt_zip or "central directory" in text or "PytorchStreamReader" in text:
        return "it is truncated or corrupted (not a complete torch.save archive)"
    if isinstance(exc, EOFError) or not text.strip():
        return "it is empty or truncated"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = next((line for line in lines if "weights_only" not in line), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
