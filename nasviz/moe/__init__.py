"""Mixture of experts: the MoE layer, routing recording and statistics, expert compression.

* :class:`MoE` — a top-k softmax-router MoE FFN (load-balancing loss, capacity factor, elastic
  sizes for supernets); :class:`MoEClassifier` and :func:`train_moe` — the teaching example.
* :class:`RoutingRecorder` — records router decisions of nasviz and Hugging Face MoE models
  (with each layer's :func:`layer_fingerprint`); :class:`RoutingStats` — DataFrames about
  them; :class:`Recording` — the saved form.
* :func:`prune_experts`, :func:`merge_experts`, :func:`drop_experts` — compressed copies of
  nasviz MoE models and of Hugging Face MoE models (Mixtral, Qwen2/3-MoE, OLMoE: expert count
  rewritten in the config, so they save and load with ``save_pretrained`` /
  ``from_pretrained``) (:func:`check_stats`: the stats were recorded from this model);
  :func:`compression_report` — the search's objectives (accuracy, params, MACs; perplexity,
  params and latency for Hugging Face models), memory and per-label accuracy of variants, for
  the search's Pareto axes.
"""

from __future__ import annotations

from nasviz.moe._classifier import MoEClassifier, train_moe
from nasviz.moe._compress import check_stats, drop_experts, merge_experts, prune_experts
from nasviz.moe._layer import Expert, MoE, Routing, load_balancing_loss, route
from nasviz.moe._recorder import RoutingRecorder, find_moe_layers, layer_fingerprint
from nasviz.moe._recording import LayerRecord, Recording
from nasviz.moe._report import compression_report
from nasviz.moe._stats import RoutingStats

__all__ = [
    "Expert",
    "LayerRecord",
    "MoE",
    "MoEClassifier",
    "Recording",
    "Routing",
    "RoutingRecorder",
    "RoutingStats",
    "check_stats",
    "compression_report",
    "drop_experts",
    "find_moe_layers",
    "layer_fingerprint",
    "load_balancing_loss",
    "merge_experts",
    "prune_experts",
    "route",
    "train_moe",
]
