"""Structured pruning and shrink: coupled layers, identical outputs, real size reduction."""

from __future__ import annotations

import pytest
import torch
from prune_helpers import cnn, mlp, same_state, snapshot, state, unchanged
from torch import nn

from nasviz.errors import ConfigError, MaskError, NasvizWarning
from nasviz.objectives import count_params
from nasviz.prune import (
    HeadAttention,
    Masks,
    channel_groups,
    channels,
    copy_model,
    magnitude,
    remove,
    savings,
    shrink,
)
from nasviz.prune._attention import replace_heads
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
    with pytest.raises(MaskError, match="sparsity"):
        channels(model, 1.0)


def test_include_and_exclude_choose_the_layers_and_old_names_warn():
    masks = channels(mlp(), 0.5, exclude=["0"])
    assert masks["0.weight"].all() and not masks["2.weight"].all()
    only = channels(mlp(), 0.5, include=["0"])
    assert masks != only and not only["0.weight"].all() and only["4.weight"].all()
    pruned = ~only["2.weight"]  # layer 0's removed channels are 2's inputs; its outputs stay
    assert pruned.all(dim=0).sum() == 24 and pruned.all(dim=1).sum() == 0
    with pytest.raises(
        ConfigError, match=r"exclude must name modules of the model; unknown: \['nope'\]"
    ):
        channels(mlp(), 0.5, exclude=["nope"])
    with pytest.raises(ConfigError, match=r"include must name modules .* unknown: \['x'\]"):
        channels(mlp(), 0.5, include=["x"])
    with pytest.warns(FutureWarning, match=r"channels: ratio= is now sparsity="):
        old = channels(mlp(), ratio=0.5)
    assert old == channels(mlp(), sparsity=0.5)
    with pytest.warns(FutureWarning, match=r"ignored= is now exclude="):
        assert channels(mlp(), 0.5, ignored=["0"]) == masks
    with pytest.raises(ConfigError, match=r"both ratio= \(its old name\) and sparsity="):
        channels(mlp(), ratio=0.5, sparsity=0.5)


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


def test_pruning_a_masked_model_leaves_it_and_its_masks_alone():
    # copy.deepcopy shares a parametrized module's class; nasviz's copies must not
    model = mlp()
    x = torch.randn(4, 64)
    magnitude(model, 0.3).apply(model)
    before, out = snapshot(model), model(x)
    masks = channels(model, 0.5)
    small = shrink(model, masks)
    copy = copy_model(model)
    Masks({"0.bias": torch.ones(48, dtype=torch.bool)}).apply(copy)  # a new parametrized name
    remove(copy_model(model, plain=True))
    assert unchanged(model, before) and torch.equal(model(x), out)
    assert not hasattr(model[0].parametrizations, "bias")
    assert count_params(small) < count_params(model)


@pytest.mark.parametrize(("ratio", "heads"), [(0.25, 3), (0.5, 2), (0.75, 1)])
def test_multihead_attention_of_torch_loses_whole_heads(ratio, heads):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 48, dropout=0.0)  # (L, N, E) inputs
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(7, 3, 32)
    masks = channels(model, ratio, example_input=x)
    assert masks["layers.0.self_attn.in_proj_weight"].shape == (96, 32)
    rows = masks["layers.1.self_attn.in_proj_weight"].all(dim=1).view(3, 4, 8)  # (qkv, head, d)
    assert (rows.all(dim=2) == rows.any(dim=2)).all()  # whole heads only
    assert int(rows[0].all(dim=1).sum()) == heads  # q, k and v lose the same heads
    assert torch.equal(rows[0], rows[1]) and torch.equal(rows[1], rows[2])
    small = _check_shrink(model, x, ratio)
    attn = small.layers[1].self_attn
    assert (
        isinstance(attn, HeadAttention) and attn.heads == heads and attn.q.out_features == 8 * heads
    )
    pad = torch.zeros(3, 7)
    pad[0, 5:] = float("-inf")  # padded keys and a causal mask work as in nn.MultiheadAttention
    causal = nn.Transformer.generate_square_subsequent_mask(7)
    masked = masks.apply(copy_model(model))
    with torch.no_grad():
        want = masked(x, mask=causal, src_key_padding_mask=pad)
        assert torch.allclose(small(x, mask=causal, src_key_padding_mask=pad), want, atol=1e-5)


def test_head_attention_returns_weights_and_takes_per_head_masks():
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    model = nn.Sequential()  # a holder, so the module can be swapped by name
    model.add_module("attn", mha)
    masks = Masks(
        {
            "attn.in_proj_weight": torch.ones(48, 16, dtype=torch.bool),
            "attn.out_proj.weight": torch.ones(16, 16, dtype=torch.bool),
        }
    )
    masks.check(model)
    q, kv = torch.randn(2, 5, 16), torch.randn(2, 6, 16)
    pad = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    causal = torch.ones(5, 6, dtype=torch.bool).triu(1)
    every = replace_heads(copy_model(model), "attn", [])  # all heads kept: nn.MHA's results
    with torch.no_grad():
        for kwargs in ({}, {"key_padding_mask": pad, "attn_mask": causal}):
            want, want_w = mha(q, kv, kv, **kwargs)
            got, got_w = every(q, kv, kv, **kwargs)
            assert torch.allclose(got, want, atol=1e-6) and torch.allclose(got_w, want_w, atol=1e-6)
    new = replace_heads(model, "attn", [1])  # drop head 1 of 4
    assert model.attn is new and new.kept == [0, 2, 3]
    per_head = torch.zeros(2 * 4, 5, 6)
    per_head[1::4] = float("-inf")  # masks only head 1, which is gone: no effect
    with torch.no_grad():
        out, weights = new(q, kv, kv, attn_mask=per_head)
        same, _ = new(q, kv, kv)
    assert torch.allclose(out, same) and weights.shape == (2, 5, 6)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 5))
    with torch.no_grad():  # one sequence, no batch dimension
        single, _ = new(q[0], kv[0], kv[0], need_weights=False)
    assert torch.allclose(single, same[0], atol=1e-6)


class _BiasKVBlock(nn.Module):
    """Attention with ``add_bias_kv`` (not shrinkable) followed by an MLP."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, add_bias_kv=True)
        self.up, self.down = nn.Linear(8, 16), nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x, x, x, need_weights=False)[0]  # (L, N, 8)
        return self.down(torch.relu(self.up(x)))


def test_attention_that_cannot_be_shrunk_is_named_in_a_warning():
    with pytest.warns(NasvizWarning, match=r"\['attn'\].*left alone"):
        masks = channels(_BiasKVBlock(), 0.5, example_input=torch.randn(5, 2, 8))
    assert masks["attn.out_proj.weight"].all() and not masks["up.weight"].all()


@pytest.mark.parametrize(("ratio", "heads"), [(0.25, 3), (0.75, 1)])
def test_nasviz_attention_heads_at_several_ratios(ratio, heads):
    torch.manual_seed(0)
    net = ElasticTransformer(vocab_size=30, seq_len=16, num_classes=2)
    sub = net.export(net.space.largest()).eval()
    small = _check_shrink(sub, torch.randint(0, 30, (4, 16)), ratio)
    assert all(b.attn.heads == heads for b in small.blocks)
