"""Objectives, checked against hand-computed counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasviz import ConfigError, Objective, ShapeError, accuracy, latency, macs, params
from nasviz.data import from_arrays
from nasviz.objectives import as_objective, count_macs, count_params, measure_latency


def test_linear_params_and_macs_by_hand():
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    assert params()(model) == 20 * 30 + 30 + 30 * 5 + 5
    assert macs((1, 20))(model) == 20 * 30 + 30 * 5
    assert count_macs(model, (8, 20)) == 8 * (20 * 30 + 30 * 5)  # batch scales MACs


def test_conv_params_and_macs_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),  # 16x16 out
        nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, bias=False),  # depthwise, 8x8 out
        nn.Conv2d(16, 8, 1),  # pointwise
    )
    expected_params = (16 * 3 * 9 + 16) + (16 * 1 * 9) + (8 * 16 + 8)
    expected_macs = 16 * 16 * 16 * 3 * 9 + 8 * 8 * 16 * 9 + 8 * 8 * 8 * 16
    assert params()(model) == expected_params
    assert macs((1, 3, 16, 16))(model) == expected_macs


def test_shared_and_frozen_parameters():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, shared)
    assert count_params(model) == 20
    model2 = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model2[0].requires_grad_(False)
    assert count_params(model2, trainable_only=True) == 10
    assert params(trainable_only=True)(model2) == 10


def test_macs_wrong_shape_is_a_shape_error():
    model = nn.Linear(20, 3)
    with pytest.raises(ShapeError, match=r"input of shape \(1, 7\) failed"):
        macs((1, 7))(model)
    with pytest.raises(ShapeError, match="tuple of positive ints"):
        count_macs(model, (1, -2))


def test_latency_is_a_positive_median_with_thread_count():
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    m = measure_latency(model, (4, 64), repeats=9, warmup=2, threads=1)
    assert m.p10_ms <= m.median_ms <= m.p90_ms
    assert m.median_ms > 0 and m.threads == 1 and m.repeats == 9
    obj = latency((64,), batch=4, repeats=5)
    assert obj(model) > 0 and obj.last.input_shape == (4, 64)
    assert obj.direction == "minimize" and obj.unit == "ms"
    assert model.training  # restored


def test_accuracy_counts_correct_predictions():
    X = torch.eye(4).repeat(25, 1)  # 100 rows, one-hot of class i % 4
    y = torch.arange(4).repeat(25)
    perfect = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        perfect.weight.copy_(torch.eye(4))
    assert accuracy((X, y))(perfect) == 100.0
    shifted = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        shifted.weight.copy_(torch.eye(4).roll(1, 0))  # predicts (i + 1) % 4: always wrong
    assert accuracy((X, y))(shifted) == 0.0
    data = from_arrays(X.numpy(), y.numpy(), val=0.2, test=0.2)
    assert accuracy(data)(perfect) == 100.0  # a Dataset is scored on its val split
    assert accuracy(data.val.loader(batch_size=7))(perfect) == 100.0


def test_objective_contract():
    obj = Objective("err", "minimize", lambda m, a: 0.25)
    assert obj(None) == 0.25 and obj.sign == 1.0
    assert Objective("acc", "maximize").sign == -1.0
    with pytest.raises(
        ConfigError, match=r"direction must be one of \('minimize', 'maximize'\), got 'down'"
    ):
        Objective("x", "down")
    with pytest.raises(ConfigError, match="has no direction"):
        as_objective("loss")
    assert as_objective(("loss", "minimize")).name == "loss"
    with pytest.raises(ConfigError, match="values come from the dict"):
        Objective("loss", "minimize")(None)
    with pytest.raises(ConfigError, match="an arch was given but Linear is not a supernet"):
        params()(nn.Linear(2, 2), arch={"depth": 2})
    with pytest.raises(ConfigError, match="accuracy data must be"):
        accuracy([1, 2, 3])(nn.Linear(2, 2))


def test_token_models_get_token_ids():
    model = nn.Sequential(nn.Embedding(10, 8), nn.Flatten(), nn.Linear(8 * 5, 2))
    assert macs((1, 5))(model) == 8 * 5 * 2
    assert latency((5,), batch=2, repeats=2)(model) > 0


def test_measuring_restores_train_mode_and_leaves_eval_mode_untouched():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    X, y = torch.randn(8, 4), torch.zeros(8, dtype=torch.long)
    accuracy((X, y))(model)
    macs((2, 4))(model)
    assert model.training and model[1].training  # restored
    model.eval()
    calls = []
    model.train = lambda mode=True: calls.append(mode)  # any mode flip would be recorded
    accuracy((X, y))(model)
    macs((2, 4))(model)
    latency((4,), batch=2, repeats=2)(model)
    assert calls == []
