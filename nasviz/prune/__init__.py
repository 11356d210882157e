"""Pruning: soft masks you can inspect, compare, save, apply, and shrink into real speed.

Methods return :class:`Masks` (parameter name -> bool tensor, True = kept) and never change the
model; ``masks.apply(model)`` / :func:`remove` mask and unmask it in place, :func:`shrink`
returns a smaller dense copy without the pruned channels.

Hugging Face models (BERT / RoBERTa, GPT-2, Llama / Mistral / Qwen2, ViT; see
:mod:`nasviz.hf`): :class:`Importance` scores heads, FFN neurons and layers from calibration
data; its :meth:`~Importance.plan` (a :class:`StructurePlan`) or :func:`prune_heads`,
:func:`prune_neurons`, :func:`prune_layers` prune the model in place, config included, so it
saves and reloads with ``save_pretrained`` / ``from_pretrained``.
"""

from __future__ import annotations

from nasviz.prune._attention import HeadAttention
from nasviz.prune._channels import ChannelGroup, channel_groups, channels
from nasviz.prune._gradual import GradualPruning, gradual, zhu_gupta_sparsity
from nasviz.prune._hf import (
    StructurePlan,
    prune_heads,
    prune_layers,
    prune_neurons,
    prune_structure,
)
from nasviz.prune._importance import IMPORTANCE_METHODS, Importance
from nasviz.prune._lottery import LotteryResult, lottery
from nasviz.prune._magnitude import magnitude
from nasviz.prune._masks import Masks, applied, copy_model, prunable, remove
from nasviz.prune._random import erk_densities, random
from nasviz.prune._shrink import Savings, savings, shrink
from nasviz.prune._sweep import METHODS, Sweep, sweep

__all__ = [
    "IMPORTANCE_METHODS",
    "METHODS",
    "ChannelGroup",
    "GradualPruning",
    "HeadAttention",
    "Importance",
    "LotteryResult",
    "Masks",
    "Savings",
    "StructurePlan",
    "Sweep",
    "applied",
    "channel_groups",
    "channels",
    "copy_model",
    "erk_densities",
    "gradual",
    "lottery",
    "magnitude",
    "prunable",
    "prune_heads",
    "prune_layers",
    "prune_neurons",
    "prune_structure",
    "random",
    "remove",
    "savings",
    "shrink",
    "sweep",
    "zhu_gupta_sparsity",
]
