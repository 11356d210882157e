"""int8_speedups: each Linear layer timed in fp32 and dynamic int8 on the input it receives."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import transformers as tf
from quant_helpers import state_hash
from torch import nn

from nasviz.errors import ConfigError, ShapeError
from nasviz.quant import describe, int8_speedups, quantize


class _Skips(nn.Module):
    """An MLP whose ``unused`` layer no input reaches."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 3))
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_every_reached_linear_layer_is_timed_both_ways_on_the_shape_it_receives():
    model = _Skips().train()
    before = state_hash(model)
    table = int8_speedups(model, torch.randn(5, 12), rounds=2)
    assert list(table.index) == ["body.0", "body.2"]  # the unused layer is left out
    assert table.loc["body.0", "input shape"] == (5, 12)
    assert table["calls"].tolist() == [1, 1]
    assert table.loc["body.2", "input shape"] == (5, 64)
    assert (table["fp32 ms"] > 0).all() and (table["int8 ms"] > 0).all()
    assert table["speedup"].tolist() == pytest.approx(
        (table["fp32 ms"] / table["int8 ms"]).tolist()
    )
    assert state_hash(model) == before and model.training  # measured on copies, mode restored
    assert all(isinstance(m, nn.Linear) for m in model.body if not isinstance(m, nn.ReLU))


class _Twice(nn.Module):
    """One Linear layer called twice per forward, on two shapes, the second time by keyword."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shared, self.norm = nn.Linear(16, 16), nn.BatchNorm1d(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.shared(self.norm(x))
        return self.shared(input=torch.cat([h, h]))


def test_a_layer_called_twice_counts_both_calls_and_submodule_modes_are_restored():
    model = _Twice().train()
    model.norm.eval()  # a frozen BatchNorm inside a training model
    table = int8_speedups(model, torch.randn(3, 16), rounds=2)
    row = table.loc["shared"]
    assert row["calls"] == 2 and row["input shape"] in ((3, 16), (6, 16))
    assert model.training and not model.norm.training


def test_masked_layers_are_timed_as_their_masked_weights_and_keep_their_masks():
    from nasviz.prune import applied, magnitude

    masked = _Skips().eval()
    masks = magnitude(masked, 0.5)
    masks.apply(masked)
    before = state_hash(masked)
    table = int8_speedups(masked, torch.randn(2, 12), rounds=1)
    assert list(table.index) == ["body.0", "body.2"]
    assert state_hash(masked) == before and set(applied(masked)) == set(masks)


def test_a_supernet_is_refused_for_dynamic_int8_not_left_in_fp32():
    from nasviz.data import digits
    from nasviz.supernet import ElasticMLP

    net = ElasticMLP.for_data(digits(seed=0))
    for call in (
        lambda: quantize(net, mode="dynamic"),
        lambda: int8_speedups(net, torch.randn(1, 64)),
    ):
        with pytest.raises(ConfigError, match="ElasticLinear.*export"):
            call()
    exported = net.export(net.largest())
    assert set(describe(quantize(exported, mode="dynamic"))["kernel"]) == {"real"}


def test_the_table_selects_the_layers_quantize_runs_in_int8():
    model = _Skips().eval()
    x = torch.randn(4, 12)
    table = int8_speedups(model, x, exclude="body.2", rounds=2)
    assert list(table.index) == ["body.0"]
    q = quantize(model, mode="dynamic", include=list(table.index))
    kernels = describe(q).set_index("layer")["kernel"]
    assert kernels["body.0"] == "real" and kernels["body.2"] == "float"
    assert torch.allclose(q(x), model(x), atol=0.05)


def test_a_hugging_face_model_is_timed_through_its_keyword_inputs():
    config = tf.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=1, n_head=2)
    torch.manual_seed(0)
    model = tf.GPT2Model(config).eval()
    ids = torch.randint(0, 50, (2, 6))
    table = int8_speedups(model, {"input_ids": ids}, rounds=1)
    assert set(table["kind"]) == {"Conv1D"}
    assert table.loc["h.0.mlp.c_fc", "input shape"] == (2, 6, 32)
    assert table.loc["h.0.mlp.c_proj", "input shape"] == (2, 6, 128)


def test_bad_input_is_refused_and_leaves_the_model_as_it_was():
    model = _Skips().train()
    before = state_hash(model)
    with pytest.raises(ShapeError, match=r"the model \(_Skips\) cannot take tensor \(2, 7\)"):
        int8_speedups(model, torch.randn(2, 7))
    assert state_hash(model) == before and model.training
    assert not any(m._forward_pre_hooks for m in model.modules())  # no hook left behind
    with pytest.raises(ConfigError, match="rounds must be a positive int"):
        int8_speedups(model, torch.randn(2, 12), rounds=0)
    with pytest.raises(ConfigError, match="already quantized"):
        int8_speedups(quantize(model, mode="dynamic"), torch.randn(2, 12))
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 2))
    with pytest.raises(ConfigError, match=r"Linear and GPT-2 Conv1D layers.*0 \(Conv2d\)"):
        int8_speedups(conv, torch.randn(1, 1, 5, 5), include="0")
    with pytest.raises(ConfigError, match="reached none of the layers to time: unused"):
        int8_speedups(model, torch.randn(2, 12), include="unused")
    with pytest.raises(ConfigError, match="int8_speedups expects a torch nn.Module"):
        int8_speedups("model", torch.randn(2, 12))


def test_a_pruned_model_quantizes_with_its_masks_baked_in_and_keeps_them():
    from nasviz.prune import applied, magnitude

    model = _Skips().eval()
    masks = magnitude(model, 0.5)
    masks.apply(model)
    x = torch.randn(4, 12)
    q = quantize(model, mode="dynamic", include=["body.0", "body.2"])
    assert set(describe(q).set_index("layer").loc[["body.0", "body.2"], "kernel"]) == {"real"}
    assert torch.allclose(q(x), model(x), atol=0.05)
    assert set(applied(model)) == set(masks)  # the user's model keeps its masks


def test_attention_output_projections_stay_fp32_and_the_quantized_encoder_runs():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 2, 64, batch_first=True, dropout=0.0)
    encoder = nn.Sequential(
        OrderedDict(
            layers=nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
            head=nn.Linear(32, 4),
        )
    ).eval()
    x = torch.randn(2, 5, 32)
    q = quantize(encoder, mode="dynamic")
    kernels = describe(q).set_index("layer")["kernel"]
    assert kernels["layers.layers.0.self_attn.out_proj"] == "float"
    assert kernels["layers.layers.0.linear1"] == "float"  # the encoder layer's fast path reads it
    assert kernels["head"] == "real"
    assert torch.allclose(q(x), encoder(x), atol=0.1)
    table = int8_speedups(encoder, x, rounds=1)
    assert list(table.index) == ["head"]


def test_the_users_hooks_do_not_fire_on_the_timed_copies():
    model = _Skips().eval()
    fired = []
    model.body[0].register_forward_hook(lambda *args: fired.append("post"))
    model.body[2].register_forward_pre_hook(lambda *args: fired.append("pre"))
    int8_speedups(model, torch.randn(1, 12), rounds=2)
    assert sorted(fired) == ["post", "pre"]  # once each: the one forward on the example
    assert len(model.body[0]._forward_hooks) == 1  # and the user's hooks are still there


def test_dynamic_int8_describes_its_layers_in_model_order_with_their_blocks():
    config = tf.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=1, n_head=2)
    torch.manual_seed(0)
    q = quantize(tf.GPT2Model(config).eval(), mode="dynamic", exclude="h.0.attn.c_proj")
    table = describe(q)
    assert list(table["layer"]) == [
        "h.0.attn.c_attn",
        "h.0.attn.c_proj",
        "h.0.mlp.c_fc",
        "h.0.mlp.c_proj",
    ]
    assert set(table["block"]) == {"h.0"}
    real = table[table["kernel"] == "real"]
    assert set(real["scheme"]) == {"symmetric"}  # per-channel int8 with zero points all 0


def test_half_precision_and_flat_inputs_are_refused_with_what_to_do():
    half = _Skips().half()
    for call in (
        lambda: quantize(half, mode="dynamic"),
        lambda: int8_speedups(half, torch.randn(2, 12).half()),
    ):
        with pytest.raises(ConfigError, match=r"float32 layers.*torch.float16.*model.float\(\)"):
            call()
    with pytest.raises(ShapeError, match=r"batch dimension; layer 'body.0' receives shape \(12,\)"):
        int8_speedups(_Skips(), torch.randn(12))
