"""Helpers of the quantization tests (imported by name, like supernet_helpers)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def state_hash(model: nn.Module) -> str:
    """A hash of every tensor in ``model``'s state dict (names, dtypes, shapes, values)."""
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
