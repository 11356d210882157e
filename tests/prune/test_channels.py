"""Structured pruning and shrink: coupled layers, identical outputs, real size reduction."""

from __future__ import annotations

import pytest
import torch
from prune_helpers import cnn, mlp, same_state, state
from torch import nn

from nasviz.errors import ConfigError, MaskError, NasvizWarning
from nasviz.objectives import count_params
from nasviz.prune import channel_groups, channels, magnitude, savings, shrink
from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer


def _check_shrink(model: nn.Module, x: torch.Tensor, ratio: float) -> nn.Module:
    before = state(model)
    masks = channels(model, ratio, example_input=x)
    small = shrink(model, masks, example_input=x)
    assert same_state(model, before)  # shrink works on a copy
    masks.apply(model)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), rtol=1e-4, atol=1e-5)
    return small


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_mlp_shrinks_to_identical_outputs(ratio):
    model = mlp((64, 48, 32, 10))
    small = _check_shrink(model, torch.randn(6, 64), ratio)
    kept = [round((1 - ratio) * 48), round((1 - ratio) * 32)]
    assert [small[0].out_features, small[2].out_features] == kept
    assert small[4].out_features == 10  # the classifier keeps every class


def test_cnn_with_batchnorm_and_inverted_residual_shrinks_exactly():
    model = cnn()
    small = _check_shrink(model, torch.randn(3, 1, 8, 8), 0.5)
    assert (
        small[3].expand[0].out_channels == 12 and small[3].dw[0].groups == 12
    )  # 24 -> 12, depthwise coupled
    assert small[0].out_channels == small[3].project[0].out_channels == 4  # residual stream coupled
    assert count_params(small) < 0.5 * count_params(model)


def test_groups_couple_conv_bn_conv_and_flatten_linear():
    groups = {g.root: g for g in channel_groups(cnn(), torch.randn(2, 1, 8, 8))}
    residual = groups["3.project.0"]
    params = {s.param for s in residual.slices}
    assert {"0.weight", "1.weight", "3.project.1.weight", "4.weight", "3.expand.0.weight"} <= params
    assert "10.weight" not in {
        s.param for g in groups.values() for s in g.slices if s.out
    }  # output layer untouched


@pytest.mark.parametrize("family", ["mlp", "cnn", "transformer"])
def test_exported_supernet_subnets_shrink_exactly(family):
    torch.manual_seed(0)
    if family == "mlp":
        net, x = ElasticMLP(), torch.randn(4, 64)
    elif family == "cnn":
        net, x = ElasticCNN(), torch.randn(4, 1, 8, 8)
    else:
        net, x = (
            ElasticTransformer(vocab_size=30, seq_len=16, num_classes=2),
            torch.randint(0, 30, (4, 16)),
        )
    sub = net.export(net.space.largest()).eval()
    small = _check_shrink(sub, x, 0.5)
    assert count_params(small) < 0.7 * count_params(sub)
    if family == "transformer":
        assert all(b.attn.heads == 2 for b in small.blocks)  # whole heads removed: 4 -> 2


def test_importance_callable_is_used_and_validated():
    model = mlp()
    first = channels(model, 0.5, importance=lambda g, p: torch.arange(g.size, dtype=torch.float64))
    assert (
        not first["0.weight"][:24].any() and first["0.weight"][24:].all()
    )  # lowest scores = first rows
    with pytest.raises(ConfigError, match="scores"):
        channels(model, 0.5, importance=lambda g, p: torch.ones(3))
    with pytest.raises(ConfigError, match="importance"):
        channels(model, 0.5, importance="taylor")


def test_ratio_that_removes_every_channel_is_a_mask_error_and_changes_nothing():
    model = mlp((8, 2, 10))
    before = state(model)
    with pytest.raises(MaskError, match=r"all 2 channels of layer '0'"):
        channels(model, 0.8)
    assert same_state(model, before)
    with pytest.raises(MaskError, match="ratio"):
        channels(model, 1.0)


def test_ignored_layers_keep_their_channels():
    masks = channels(mlp(), 0.5, ignored=["0"])
    assert masks["0.weight"].all() and not masks["2.weight"].all()
    with pytest.raises(ConfigError, match="ignored"):
        channels(mlp(), 0.5, ignored=["nope"])


def test_unstructured_masks_shrink_to_nothing_and_say_so():
    model = mlp()
    masks = magnitude(model, 0.5)
    with pytest.warns(NasvizWarning, match="saves nothing at dense inference"):
        small = shrink(model, masks)
    assert count_params(small) == count_params(model)
    s = savings(model, masks)
    assert s.dense_saving == 0.0 and s.sparse_saving > 0.45
    assert "removed by shrink" in str(s)


def test_structured_savings_are_real():
    model = mlp()
    s = savings(model, channels(model, 0.5))
    assert s.shrunk_params < s.dense_params and s.dense_saving > 0.3


def test_untraceable_model_asks_for_an_example_input():
    with pytest.raises(ConfigError, match="example_input"):
        channels(cnn(), 0.5, example_input=(2, 3, 8, 8))
