"""Tiny Hugging Face models built from configs (random weights, nothing downloaded), one per
family nasviz.hf supports, seeded so every test sees the same weights."""

from __future__ import annotations

import tempfile

import torch
import transformers as tf
from torch import nn

VOCAB = 64

_DECODER = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 48,
    "num_hidden_layers": 3,
    "max_position_embeddings": 64,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}
_ENCODER = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "intermediate_size": 48,
    "max_position_embeddings": 64,
}
_MOE = {
    "vocab_size": VOCAB,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 32,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

#: family name -> builder of a tiny model in eval mode (4 heads, 3 layers, 48 FFN neurons)
DENSE = {
    "bert": lambda: tf.BertForSequenceClassification(tf.BertConfig(**_ENCODER, num_labels=3)),
    "roberta": lambda: tf.RobertaForMaskedLM(tf.RobertaConfig(**_ENCODER, pad_token_id=1)),
    "gpt2": lambda: tf.GPT2LMHeadModel(
        tf.GPT2Config(
            vocab_size=VOCAB,
            n_embd=32,
            n_head=4,
            n_layer=3,
            n_positions=64,
            n_inner=48,
            bos_token_id=1,
            eos_token_id=2,
        )
    ),
    "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**_DECODER)),
    "mistral": lambda: tf.MistralForCausalLM(tf.MistralConfig(**_DECODER)),
    "qwen2": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**_DECODER)),
    "vit": lambda: tf.ViTForImageClassification(
        tf.ViTConfig(
            image_size=8,
            patch_size=4,
            num_channels=3,
            hidden_size=32,
            num_attention_heads=4,
            num_hidden_layers=3,
            intermediate_size=48,
            num_labels=3,
        )
    ),
}

#: MoE family -> builder (2 layers, 4 experts, top-2)
MOE = {
    "mixtral": lambda: tf.MixtralForCausalLM(
        tf.MixtralConfig(**_MOE, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2)
    ),
    "qwen2_moe": lambda: tf.Qwen2MoeForCausalLM(
        tf.Qwen2MoeConfig(
            **_MOE,
            intermediate_size=32,
            moe_intermediate_size=8,
            shared_expert_intermediate_size=16,
            num_experts=4,
            num_experts_per_tok=2,
        )
    ),
    "qwen3_moe": lambda: tf.Qwen3MoeForCausalLM(
        tf.Qwen3MoeConfig(
            **_MOE,
            intermediate_size=32,
            moe_intermediate_size=8,
            num_experts=4,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            head_dim=8,
        )
    ),
    "olmoe": lambda: tf.OlmoeForCausalLM(
        tf.OlmoeConfig(**_MOE, intermediate_size=32, num_experts=4, num_experts_per_tok=2)
    ),
}


def build(name: str, seed: int = 0) -> nn.Module:
    """A fresh tiny model of family ``name`` (a DENSE or MOE key), in eval mode."""
    torch.manual_seed(seed)
    return {**DENSE, **MOE}[name]().eval()


def logits(model: nn.Module, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def reloaded(model: nn.Module) -> nn.Module:
    """``model`` saved with save_pretrained and read back with from_pretrained."""
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return type(model).from_pretrained(folder).eval()


def state_hash(model: nn.Module) -> tuple:
    """Every parameter and buffer, by name, shape and bytes, plus the config: equal iff the
    model is unchanged."""
    tensors = tuple(
        (k, tuple(v.shape), v.detach().cpu().numpy().tobytes())
        for k, v in model.state_dict().items()
    )
    return tensors, model.config.to_json_string()
