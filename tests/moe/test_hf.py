"""RoutingRecorder on tiny Hugging Face MoE models built from configs (random weights, offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf

from nasviz.errors import MoEError
from nasviz.moe import RoutingRecorder, find_moe_layers, prune_experts

_COMMON = {
    "vocab_size": 64,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 32,
}
_MODELS = {
    "mixtral": lambda: tf.MixtralForCausalLM(
        tf.MixtralConfig(
            intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, **_COMMON
        )
    ),
    "qwen2_moe": lambda: tf.Qwen2MoeForCausalLM(
        tf.Qwen2MoeConfig(
            intermediate_size=32,
            moe_intermediate_size=8,
            shared_expert_intermediate_size=16,
            num_experts=4,
            num_experts_per_tok=2,
            **_COMMON,
        )
    ),
    "qwen3_moe": lambda: tf.Qwen3MoeForCausalLM(
        tf.Qwen3MoeConfig(
            intermediate_size=32,
            moe_intermediate_size=8,
            num_experts=4,
            num_experts_per_tok=2,
            head_dim=8,
            **_COMMON,
        )
    ),
    "olmoe": lambda: tf.OlmoeForCausalLM(
        tf.OlmoeConfig(
            intermediate_size=32,
            num_experts=4,
            num_experts_per_tok=2,
            pad_token_id=0,
            eos_token_id=1,
            **_COMMON,
        )
    ),
    "switch": lambda: tf.SwitchTransformersForConditionalGeneration(
        tf.SwitchTransformersConfig(
            vocab_size=64,
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=2,
            num_experts=4,
            expert_capacity=8,
            num_sparse_encoder_layers=1,
            num_sparse_decoder_layers=1,
        )
    ),
}
_LAYERS = {
    "mixtral": ["model.layers.0.mlp", "model.layers.1.mlp"],
    "qwen2_moe": ["model.layers.0.mlp", "model.layers.1.mlp"],
    "qwen3_moe": ["model.layers.0.mlp", "model.layers.1.mlp"],
    "olmoe": ["model.layers.0.mlp", "model.layers.1.mlp"],
    "switch": ["encoder.block.1.layer.1.mlp", "decoder.block.1.layer.2.mlp"],
}


def _run(name: str, model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    extra = {"decoder_input_ids": ids[:, :5]} if name == "switch" else {}
    return model(input_ids=ids, **extra).logits


@pytest.fixture(scope="module", params=list(_MODELS))
def hf_model(request):
    torch.manual_seed(0)
    return request.param, _MODELS[request.param]().eval()


def test_finds_every_moe_block(hf_model):
    name, model = hf_model
    assert [n for n, _, _ in find_moe_layers(model)] == _LAYERS[name]


def test_recording_leaves_outputs_and_hooks_unchanged(hf_model):
    name, model = hf_model
    ids = torch.randint(0, 64, (3, 7), generator=torch.Generator().manual_seed(1))
    hooks_before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    with torch.no_grad():
        before = _run(name, model, ids)
        with RoutingRecorder(model, labels={"source": ["a", "b", "a"]}) as rec:
            during = _run(name, model, ids)
    assert torch.equal(before, during)
    assert (
        sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
        == hooks_before
    )
    stats = rec.stats()
    first = rec.recording().layers[0]
    k = 1 if name == "switch" else 2
    assert first.experts.shape == (21, k) and first.probs.shape == (21, 4)
    assert np.array_equal(first.token, ids.reshape(-1).numpy())
    assert np.array_equal(first.example, np.repeat(np.arange(3), 7))
    # the recorded choices are the router's top-k of its probabilities
    top = np.argsort(-first.probs, axis=1, kind="stable")[:, :k]
    assert np.array_equal(np.sort(top, axis=1), np.sort(first.experts, axis=1))
    assert stats.by_label("source", layer=0).index.tolist() == ["a", "b"]
    if name == "mixtral":  # renormalized top-k gates
        np.testing.assert_allclose(first.gates.sum(axis=1), 1.0, rtol=1e-5)


def test_hooks_removed_after_exception(hf_model):
    _, model = hf_model
    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    with pytest.raises(ValueError, match="stop"), RoutingRecorder(model):
        raise ValueError("stop")
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == before


def test_compression_of_hf_models_is_a_clear_error(hf_model):
    name, model = hf_model
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), RoutingRecorder(model) as rec:
        _run(name, model, ids)
    with pytest.raises(MoEError, match="Hugging Face models can be recorded but not compressed"):
        prune_experts(model, rec.stats(), keep=2)
