"""Lottery tickets: iterative magnitude pruning with rewinding, every round kept."""

from __future__ import annotations

import pytest
import torch
from prune_helpers import mlp, snapshot, unchanged

from nasviz.errors import ConfigError
from nasviz.prune import lottery, magnitude


def _trainer(x, y, steps=5):
    def train(model):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return train


def test_rounds_reach_the_sparsity_and_rewind_survivors_to_init():
    torch.manual_seed(0)
    model = mlp((16, 32, 4))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    # no training: weights stay at init; 48.8% in 3 rounds is 20% of the rest per round
    result = lottery(model, _trainer(x, y, steps=0), rounds=3, sparsity=0.488)
    assert result.sparsities == pytest.approx([0.0, 0.2, 0.36, 0.488], abs=2e-3)
    default = lottery(mlp((16, 32, 4)), _trainer(x, y, steps=0), rounds=3)  # 20% per round
    assert default.sparsities == pytest.approx(result.sparsities, abs=2e-3)
    with pytest.warns(FutureWarning, match=r"lottery: rate= \(per round\) is now sparsity="):
        old = lottery(mlp((16, 32, 4)), _trainer(x, y, steps=0), rounds=3, rate=0.2)
    assert old.sparsities == pytest.approx(result.sparsities, abs=2e-3)
    with (
        pytest.warns(FutureWarning, match=r"lottery: pass rate=\.\.\. by keyword"),
        pytest.warns(FutureWarning, match=r"rate= \(per round\) is now sparsity="),
    ):
        lottery(mlp((16, 32, 4)), _trainer(x, y, steps=0), 3, 0.2)
    for earlier, later in zip(result.masks, result.masks[1:], strict=False):
        assert all(not (later[n] & ~earlier[n]).any() for n in later)  # nested tickets
    final = result.masks[-1]
    assert torch.equal(model[0].weight[final["0.weight"]], init["0.weight"][final["0.weight"]])
    table = result.table()
    assert list(table["round"]) == [0, 1, 2, 3] and table["overlap_with_previous"].iloc[-1] > 0


def test_rewinding_restores_init_values_after_training():
    torch.manual_seed(1)
    model = mlp((16, 32, 4))
    init = model[0].weight.detach().clone()
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    calls = []

    def train(m):
        calls.append(m[0].weight.detach().clone())
        return _trainer(x, y)(m)

    result = lottery(model, train, rounds=2, sparsity=0.75)
    mask = result.masks[0]["0.weight"]
    assert torch.equal(calls[1][mask], init[mask]) and (calls[1][~mask] == 0).all()
    assert len(result.metrics) == 3


def test_bad_arguments_change_nothing():
    model = mlp()
    magnitude(model, 0.3).apply(model)
    before = snapshot(model)
    with pytest.raises(ConfigError, match="rounds"):
        lottery(model, lambda m: None, rounds=0)
    with pytest.raises(ConfigError, match="sparsity must be > 0"):
        lottery(model, lambda m: None, rounds=1, sparsity=0.0)
    with pytest.raises(ConfigError, match="not also rate="):
        lottery(model, lambda m: None, rounds=1, sparsity=0.5, rate=0.2)
    with pytest.raises(ConfigError, match="rewind"):
        lottery(model, lambda m: None, rounds=1, rewind="late")
    with pytest.raises(ConfigError, match="rewind state"):
        lottery(model, lambda m: None, rounds=1, rewind={"0.weight": torch.zeros(2, 2)})
    assert unchanged(model, before)


def test_a_failing_train_fn_leaves_the_model_as_it_was():
    torch.manual_seed(2)
    model = mlp((16, 32, 4))
    magnitude(model, 0.3).apply(model)  # masks applied before the call come back too
    before = snapshot(model)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    calls = []

    def train(m):
        calls.append(1)
        if len(calls) == 3:  # round 2, after two rounds of training and pruning
            raise RuntimeError("out of memory")
        return _trainer(x, y)(m)

    with pytest.raises(RuntimeError, match="out of memory"):
        lottery(model, train, rounds=3, sparsity=0.875)
    assert len(calls) == 3 and unchanged(model, before)


def test_data_in_place_of_train_fn_trains_each_round_with_the_training_layer():
    torch.manual_seed(3)
    model = mlp((16, 32, 4))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(256, 16, generator=g)
    y = (x[:, :4].argmax(1)).long()  # learnable: the largest of the first four features
    val = (x[:64], y[:64])
    result = lottery(
        model, (x, y), rounds=2, sparsity=0.75, train_options={"epochs": 8, "lr": 1e-2}, val=val
    )
    assert result.sparsities == pytest.approx([0.0, 0.5, 0.75], abs=2e-3)
    assert all(isinstance(m, float) and 0.0 <= m <= 100.0 for m in result.metrics)
    assert result.metrics[0] > 60.0  # trained: far above chance (25%)
    final = result.masks[-1]
    assert not model[0].weight[~final["0.weight"]].any()  # pruned weights stayed zero
    losses = lottery(mlp((16, 32, 4)), (x, y), rounds=1, train_options={"steps": 3})
    assert len(losses.metrics) == 2 and all(m > 0 for m in losses.metrics)  # last train loss


def test_data_arguments_are_checked_before_anything_changes():
    model = mlp((16, 32, 4))
    before = snapshot(model)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    with pytest.raises(ConfigError, match="train_options= and val= go with data"):
        lottery(model, _trainer(x, y), rounds=2, train_options={"epochs": 1})
    with pytest.raises(ConfigError, match="lottery data"):
        lottery(model, "not data", rounds=2)
    with pytest.raises(ConfigError, match="second argument is the data"):
        lottery(model, mlp((16, 4)), rounds=2)
    assert unchanged(model, before)


def test_rounds_on_regression_data_record_the_mse():
    """With data and val of a regression task, each round's metric is the task's (MSE)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, generator=g)
    y = x[:, :1] - x[:, 1:2]  # float targets (64, 1): regression
    result = lottery(
        mlp((16, 32, 1)), (x, y), rounds=1, sparsity=0.5, val=(x, y),
        train_options={"steps": 2},
    )  # fmt: skip
    assert len(result.metrics) == 2 and all(m > 0 for m in result.metrics)
