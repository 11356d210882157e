"""Shared fixtures of the quantization tests: digits and a small trained MLP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasviz.data import digits


@pytest.fixture(scope="session")
def digits_data():
    return digits(seed=0)


@pytest.fixture(scope="session")
def trained_mlp(digits_data):
    """A 64-64-64-10 MLP trained on digits with a plain loop (about a second)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures run before the per-test one-thread fixture
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    X, y = digits_data.train.X, digits_data.train.y
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.set_num_threads(before)
    return model.eval()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: intra-op threads only add contention on shared CI cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
