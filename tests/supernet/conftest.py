"""Shared data fixtures of the supernet tests."""

from __future__ import annotations

import pytest
import torch
from supernet_helpers import FAMILIES, make_net

from nasviz.data import digits, tasks


@pytest.fixture(scope="session")
def digits_data():
    return digits()


@pytest.fixture(scope="session")
def tasks_data():
    return tasks(n_per_task=60)


@pytest.fixture(scope="module", params=FAMILIES)
def family_net(request):
    net, x = make_net(request.param)
    return request.param, net.eval(), x


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These models are tiny: intra-op threads only add contention on shared CI cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
