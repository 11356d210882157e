"""Fixtures for the pruning tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from prune_helpers import cnn, mlp


@pytest.fixture
def small_mlp():
    return mlp()


@pytest.fixture
def small_cnn():
    return cnn()
