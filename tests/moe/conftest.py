"""Small seeded MoE models and recordings shared by the MoE tests."""

from __future__ import annotations

import pytest
import torch

from nasviz import data
from nasviz.moe import MoEClassifier, RoutingRecorder
from nasviz.supernet import ElasticTransformer


@pytest.fixture(scope="session")
def tiny_tasks():
    return data.tasks(n_per_task=40, seq_len=8, tokens_per_task=4, seed=0)


@pytest.fixture
def classifier(tiny_tasks):
    torch.manual_seed(0)
    return MoEClassifier.for_data(tiny_tasks, dim=16, hidden=16, num_experts=4, top_k=2).eval()


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


@pytest.fixture
def moe_supernet():
    """(net, dataset): a tiny untrained ElasticTransformer with MoE FFNs, in eval mode."""
    dataset = data.tasks(n_per_task=20, seq_len=8, tokens_per_task=4)
    torch.manual_seed(0)
    net = ElasticTransformer.for_data(
        dataset,
        dim=16,
        head_dim=8,
        layers=(1, 2),
        heads=(1, 2),
        ffn_widths=(8, 16),
        moe=True,
        experts=(2, 4),
        top_ks=(1, 2),
    ).eval()
    return net, dataset
