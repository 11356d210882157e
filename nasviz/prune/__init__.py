"""Pruning: soft masks you can inspect, compare, save, apply, and shrink into real speed.

Methods return :class:`Masks` (parameter name -> bool tensor, True = kept) and never change the
model; ``masks.apply(model)`` / :func:`remove` mask and unmask it in place, :func:`shrink`
returns a smaller dense copy without the pruned channels.
"""

from __future__ import annotations

from nasviz.prune._attention import HeadAttention
from nasviz.prune._channels import ChannelGroup, channel_groups, channels
from nasviz.prune._gradual import GradualPruning, gradual, zhu_gupta_sparsity
from nasviz.prune._lottery import LotteryResult, lottery
from nasviz.prune._magnitude import magnitude
from nasviz.prune._masks import Masks, applied, copy_model, prunable, remove
from nasviz.prune._random import erk_densities, random
from nasviz.prune._shrink import Savings, savings, shrink
from nasviz.prune._sweep import METHODS, Sweep, sweep

__all__ = [
    "METHODS",
    "ChannelGroup",
    "GradualPruning",
    "HeadAttention",
    "LotteryResult",
    "Masks",
    "Savings",
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
    "random",
    "remove",
    "savings",
    "shrink",
    "sweep",
    "zhu_gupta_sparsity",
]
