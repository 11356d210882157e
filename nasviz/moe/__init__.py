"""Mixture of experts: the MoE layer, routing recording and statistics, expert compression.

* :class:`MoE` — a top-k softmax-router MoE FFN (load-balancing loss, capacity factor, elastic
  sizes for supernets); :class:`MoEClassifier` and :func:`train_moe` — the teaching example.
* :class:`RoutingRecorder` — records router decisions of nasviz and Hugging Face MoE models;
  :class:`RoutingStats` — DataFrames about them; :class:`Recording` — the saved form.
* :func:`prune_experts`, :func:`merge_experts`, :func:`drop_experts` — compressed copies;
  :func:`compression_report` — params, memory and accuracy on the search's Pareto axes.
"""

from __future__ import annotations

from nasviz.moe._classifier import MoEClassifier, train_moe
from nasviz.moe._compress import compression_report, drop_experts, merge_experts, prune_experts
from nasviz.moe._layer import Expert, MoE, Routing, load_balancing_loss, route
from nasviz.moe._recorder import RoutingRecorder, find_moe_layers
from nasviz.moe._recording import LayerRecord, Recording
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
    "compression_report",
    "drop_experts",
    "find_moe_layers",
    "load_balancing_loss",
    "merge_experts",
    "prune_experts",
    "route",
    "train_moe",
]
