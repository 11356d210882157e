"""The default recipe trains subnets that work without retraining (digits, fixed seed)."""

from __future__ import annotations

import pytest
import torch

from nasviz import objectives
from nasviz.supernet import ElasticCNN, ElasticMLP, train_supernet


@pytest.mark.slow
@pytest.mark.parametrize("family", [ElasticMLP, ElasticCNN], ids=["mlp", "cnn"])
def test_default_recipe_quality(family, digits_data):
    torch.manual_seed(0)
    net = family.for_data(digits_data)
    run = train_supernet(net, digits_data, seed=0, eval_every=100)
    status = run.run()
    assert status.state == "finished", run.traceback
    accuracy = objectives.accuracy(digits_data)
    largest, smallest = accuracy(net, net.largest()), accuracy(net, net.smallest())
    randoms = [accuracy(net, arch) for arch in net.sample(2024, n=20)]
    assert largest >= 95.0, largest
    assert smallest >= 90.0, smallest
    assert min(randoms) >= 85.0, randoms
