"""Fixtures of the hardware tests: one small measured profile shared by the module."""

from __future__ import annotations

import pytest
from hardware_helpers import tiny_cnn

from nasviz.hardware import HardwareProfile


@pytest.fixture(scope="session")
def cnn_profile():
    """(net, profile): a tiny ElasticCNN measured in eager mode (few repeats: tests check
    structure and arithmetic, never timing)."""
    net = tiny_cnn()
    profile = HardwareProfile.measure(
        net, (1, 1, 8, 8), repeats=2, warmup=1, rounds=1, samples=4, seed=0
    )
    return net, profile
