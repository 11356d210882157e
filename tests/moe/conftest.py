"""Small seeded MoE models and recordings shared by the MoE tests."""

from __future__ import annotations

import pytest
import torch

from nasviz import data
from nasviz.moe import MoEClassifier, RoutingRecorder


@pytest.fixture(scope="session")
def tiny_tasks():
    return data.tasks(n_per_task=40, seq_len=8, tokens_per_task=4, seed=0)


@pytest.fixture
def classifier(tiny_tasks):
    torch.manual_seed(0)
    return MoEClassifier.for_dataset(tiny_tasks, dim=16, hidden=16, num_experts=4, top_k=2).eval()


@pytest.fixture
def recorded(classifier, tiny_tasks):
    """(model, stats) recorded on the test split with task and class labels."""
    test = tiny_tasks.test
    with (
        torch.no_grad(),
        RoutingRecorder(classifier, labels={"task": test.extras["task"], "class": test.y}) as rec,
    ):
        classifier(test.X)
    return classifier, rec.stats()
