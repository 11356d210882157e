"""nasviz.hf: one adapter per family reads every tiny model built from a config correctly."""

from __future__ import annotations

import pytest
import torch
import transformers as tf
from hf_models import DENSE, MOE, build, state_hash
from torch import nn

from nasviz.errors import ConfigError
from nasviz.hf import FAMILIES, adapter_for, find_adapter, supported_model_types


@pytest.mark.parametrize("name", list(DENSE))
def test_attention_and_ffn_views_match_the_config_and_the_weights(name):
    model = build(name)
    adapter = adapter_for(model)
    assert adapter.num_layers == 3 and len(adapter.layers()) == 3
    kv = 2 if name in ("llama", "mistral", "qwen2") else 4
    for i in range(3):
        a, f = adapter.attention(i), adapter.ffn(i)
        assert (a.heads, a.kv_heads, a.head_dim, a.group) == (4, kv, 8, 4 // kv)
        assert a.q.rows().shape == (32, 32) and a.k.rows().shape == (kv * 8, 32)
        assert a.o.columns().shape == (32, 32)
        assert f.neurons == 48 and all(p.rows().shape == (48, 32) for p in f.inputs)
        assert f.output.columns().shape == (32, 48)
        assert adapter.experts(i) is None
    a = adapter.attention(1)
    assert a.name.startswith(adapter.layer_name(1)) and model.get_submodule(a.q.name) is a.q.module


def test_gpt2_packed_projection_is_three_thirds_of_a_transposed_weight():
    model = build("gpt2")
    a = adapter_for(model).attention(0)
    c_attn = model.transformer.h[0].attn.c_attn
    assert a.q.module is a.k.module is a.v.module is c_attn and a.q.transposed
    assert [p.offset for p in (a.q, a.k, a.v)] == [0, 32, 64]
    x = torch.randn(5, 32)
    q, k, v = c_attn(x).split(32, dim=-1)
    for proj, out in ((a.q, q), (a.k, k), (a.v, v)):
        expected = x @ proj.rows().t() + c_attn.bias[proj.offset : proj.offset + 32]
        torch.testing.assert_close(expected, out)


@pytest.mark.parametrize("name", list(MOE))
def test_experts_views_of_moe_families(name):
    model = build(name)
    adapter = adapter_for(model)
    assert adapter.moe_layers() == [0, 1]
    block = adapter.experts(0)
    assert (block.num_experts, block.top_k) == (4, 2)
    assert block.router.weight.shape == (4, 16)
    assert block.experts.gate_up_proj.shape == (4, 2 * block.hidden, 16)
    assert block.name == "model.layers.0.mlp" and adapter.ffn(0) is None
    assert adapter.limits()["experts"] == "uniform"


@pytest.mark.parametrize("name", [*DENSE, *MOE])
def test_example_input_runs_the_model(name):
    model = build(name)
    inputs = adapter_for(model).example_input(batch=2, length=5)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape[0] == 2


def test_what_configs_can_express():
    assert adapter_for(build("llama")).limits() == {
        "heads": "uniform",
        "ffn": "uniform",
        "layers": "any",
        "experts": "no: not an MoE model",
    }
    bert = adapter_for(build("bert")).limits()
    assert bert["heads"].startswith("no: transformers 5 BERT") and bert["ffn"] == "uniform"
    assert adapter_for(build("olmoe")).limits()["heads"].startswith("no: OLMoE's q_norm")
    gpt2 = build("gpt2")
    gpt2.config.scale_attn_by_inverse_layer_idx = True
    assert "scale_attn_by_inverse_layer_idx" in adapter_for(gpt2).limits()["layers"]


def test_rewrite_config_returns_a_validated_copy_and_changes_nothing():
    model = build("qwen2_moe")
    before = state_hash(model)
    adapter = adapter_for(model)
    config = adapter.rewrite_config(heads=2, kv_heads=1, layers=[1], experts=3, top_k=3)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 1, 8)
    assert config.num_hidden_layers == 1 and config.num_experts == 3
    assert config.num_experts_per_tok == 3 and config.layer_types == ["full_attention"]
    assert config.mlp_only_layers == [] and config.decoder_sparse_step == 1
    assert state_hash(model) == before


def test_rewrite_config_refuses_what_the_class_cannot_express():
    bert = adapter_for(build("bert"))
    with pytest.raises(
        ConfigError, match="BERT heads cannot be saved in its config: transformers 5"
    ):
        bert.rewrite_config(heads=2)
    llama = adapter_for(build("llama"))
    with pytest.raises(
        ConfigError, match=r"LlamaConfig rejects .*hidden size \(32\) is not a multiple"
    ):
        llama.rewrite_config(heads=3, kv_heads=1)
    with pytest.raises(ConfigError, match="layers entry 3 is out of range: .* has layers 0..2"):
        llama.rewrite_config(layers=[0, 3])
    with pytest.raises(ConfigError, match="no experts"):
        llama.rewrite_config(experts=2)
    gpt2 = build("gpt2")
    gpt2.config.scale_attn_by_inverse_layer_idx = True
    with pytest.raises(ConfigError, match="renumbers"):
        adapter_for(gpt2).rewrite_config(layers=[0, 2])


def test_an_unsupported_family_lists_the_supported_ones():
    torch.manual_seed(0)
    opt = tf.OPTForCausalLM(
        tf.OPTConfig(
            vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2
        )
    )
    with pytest.raises(
        ConfigError, match="model_type 'opt'.*supported model types: bert, gpt2, llama"
    ):
        adapter_for(opt)
    with pytest.raises(ConfigError, match="not a Hugging Face model"):
        adapter_for(nn.Linear(2, 2))
    assert find_adapter(opt) is None and find_adapter(nn.Linear(2, 2)) is None
    assert supported_model_types() == sorted(t for f in FAMILIES for t in f.model_types)
    assert {"bert", "roberta", "gpt2", "llama", "mistral", "qwen2", "vit", "mixtral"} <= set(
        supported_model_types()
    )
