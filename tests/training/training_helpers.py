"""Small seeded models and data for the training-layer tests (imported by name)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def blobs(n: int = 96, features: int = 8, classes: int = 3, seed: int = 0):
    """(X, y): ``classes`` Gaussian blobs, easy to learn."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centers = torch.randn(classes, features, generator=g) * 2
    X = centers[y] + torch.randn(n, features, generator=g) * 0.5
    return X, y


def mlp(features: int = 8, classes: int = 3, hidden: int = 16, dropout: float = 0.0, seed: int = 0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes)
    )


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def fingerprint(model: nn.Module) -> tuple[str, str, tuple[bool, ...]]:
    """What must not change when a call refuses: the weights' bytes, the device, every mode."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    device = str(next(model.parameters()).device)
    return h.hexdigest(), device, tuple(m.training for m in model.modules())


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)
