"""Hugging Face adapters: one table row per model family, one adapter per model.

``adapter_for(model)`` returns an :class:`HFAdapter` that knows, for BERT / RoBERTa, GPT-2,
Llama / Mistral / Qwen2, ViT, Mixtral, Qwen2-MoE / Qwen3-MoE and OLMoE models (transformers 5
module layout, any head class), where things are and how to change the config:

* ``adapter.layers()`` — the block list; ``adapter.num_layers``; ``adapter.layer_name(i)``.
* ``adapter.attention(i)`` — an :class:`AttentionBlock`: the q / k / v / o
  :class:`Projection` s (GPT-2's packed ``c_attn`` as three thirds), ``heads``, ``kv_heads``
  (grouped-query attention: query head ``h`` reads key/value head ``h // group``) and
  ``head_dim``.
* ``adapter.ffn(i)`` — an :class:`FFNBlock` (gate / up projections, down projection; GPT-2's
  ``Conv1D`` weights are transposed, :class:`Projection` hides that), None in MoE layers.
* ``adapter.experts(i)`` — an :class:`ExpertsBlock` (router, fused expert tensors, top-k),
  None in dense layers.
* ``adapter.limits()`` — which sizes the family's config can express (``"uniform"``: one size
  for all layers; no supported family stores per-layer sizes; BERT / GPT-2 cannot store fewer
  heads at all in transformers 5); ``adapter.rewrite_config(heads=, kv_heads=, ffn=, layers=,
  experts=)`` — a validated config copy, refusing what the class cannot express;
  ``adapter.set_config(config)`` installs one.
* ``adapter.example_input()`` — keyword inputs for one forward (token ids or pixel values).

The table itself is :data:`FAMILIES` (one :class:`Family` per family): code that needs a new
family adds a row, never an ``if "llama" in name`` branch. Pruning (:mod:`nasviz.prune`),
expert compression (:mod:`nasviz.moe`) and conversion to supernets use these adapters.
nasviz.hf never imports transformers itself: it reads the model it is given.
"""

from __future__ import annotations

from nasviz.hf._adapter import HFAdapter, adapter_for, find_adapter
from nasviz.hf._families import FAMILIES, Family, supported_model_types
from nasviz.hf._layers import (
    AttentionBlock,
    ExpertsBlock,
    FFNBlock,
    Projection,
    is_conv1d,
)

__all__ = [
    "FAMILIES",
    "AttentionBlock",
    "ExpertsBlock",
    "FFNBlock",
    "Family",
    "HFAdapter",
    "Projection",
    "adapter_for",
    "find_adapter",
    "is_conv1d",
    "supported_model_types",
]
