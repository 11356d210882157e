"""Importance ordering: reorder_channels keeps the largest subnet, sorts channels, carries the
optimizer state along, and training sorts right before width opens."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from supernet_helpers import make_net

from nasviz.supernet import (
    ElasticCNN,
    ElasticMLP,
    ElasticTransformer,
    SupernetTrainer,
    TrainingRun,
)


def _sorted(scores: torch.Tensor) -> bool:
    return bool(torch.all(scores[:-1] >= scores[1:]))


@pytest.mark.parametrize("family", ["mlp", "cnn", "cnn-transform", "transformer", "moe"])
def test_reorder_keeps_the_largest_subnet(family):
    net, x = make_net(family)
    net.eval()
    with torch.no_grad():
        before = net(x)
        net.reorder_channels()
        after = net(x)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)


def test_reorder_sorts_units_channels_and_heads():
    mlp, _ = make_net("mlp")
    mlp.reorder_channels()
    for i in range(len(mlp.layers)):
        after = mlp.layers[i + 1] if i + 1 < len(mlp.layers) else mlp.head
        assert _sorted(after.weight.abs().sum(0))
    cnn, _ = make_net("cnn")
    cnn.reorder_channels()
    for blocks in cnn.stages:
        for b in blocks:
            assert _sorted(b.project.weight.abs().sum((0, 2, 3)))
    torch.manual_seed(0)
    transformer = ElasticTransformer(40, 12, 2, heads=(1, 2, 4))
    with torch.no_grad():  # make the last head of each block the most important
        for b in transformer.blocks:
            b.attn.out.weight[:, -16:] *= 10
    transformer.reorder_channels()
    for b in transformer.blocks:
        heads = b.attn.out.weight.abs().sum(0).view(4, 16).sum(1)
        assert _sorted(heads) and heads[0] > 5 * heads[1]
        assert _sorted(b.fc2.weight.abs().sum(0))


def _train_largest(net, x, y, optimizer, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("cls", [ElasticMLP, ElasticCNN])
def test_optimizer_moments_move_with_the_weights(cls):
    torch.manual_seed(0)
    net = cls()
    x = torch.randn(32, 64) if cls is ElasticMLP else torch.randn(32, 1, 8, 8)
    y = torch.randint(0, 10, (32,))
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    _train_largest(net, x, y, optimizer, 3)
    twins = {}
    for mode in ("permuted", "not permuted", "untouched"):
        twin = copy.deepcopy(net)
        opt = torch.optim.AdamW(twin.parameters(), lr=1e-2)
        opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # (else shared moments)
        if mode != "untouched":
            twin.reorder_channels(opt.state if mode == "permuted" else None)
        _train_largest(twin, x, y, opt, 3)
        twins[mode] = twin.eval()
    with torch.no_grad():
        out = {mode: twin(x) for mode, twin in twins.items()}
    rounding = (out["permuted"] - out["untouched"]).abs().max().item()
    wrong = (out["not permuted"] - out["untouched"]).abs().max().item()
    assert rounding < 1e-3 and wrong > 30 * max(rounding, 1e-5)


@pytest.mark.parametrize(
    ("cls", "options", "opens_at"),
    [
        (ElasticCNN, {"shrinking": "progressive", "delay": 0.25}, 6),  # expand opens last
        (ElasticMLP, {"delay": 0.5}, 4),  # sandwich: everything opens after the delay
        (ElasticMLP, {}, None),  # sandwich from step 0: the first units train from the start
    ],
)
def test_training_sorts_right_before_width_opens(digits_data, cls, options, opens_at):
    torch.manual_seed(0)
    net = cls()
    eng = SupernetTrainer(net, digits_data.train.subset(200), epochs=4, batch_size=100, **options)
    assert eng.total == 8
    assert [s for s in range(eng.total) if eng.reorders_at(s)] == ([opens_at] if opens_at else [])
    width = net.width_groups[0]
    if opens_at is not None:
        assert width not in eng.opened(opens_at - 1) and width in eng.opened(opens_at)
    events = []
    run = TrainingRun(eng)
    run.subscribe(events.append)
    assert run.run().state == "finished", run.traceback
    reorders = [e.data["step"] for e in events if e.kind == "reorder"]
    assert reorders == ([opens_at] if opens_at else [])
    losses = [v for e in events if e.kind == "loss" for v in e.data["losses"].values()]
    assert all(torch.isfinite(torch.tensor(losses)))
