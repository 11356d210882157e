"""Mixture of experts: the MoE layer, routing recording and statistics, expert compression."""

from __future__ import annotations

from nasviz.moe._layer import MoE, Expert, Routing, load_balancing_loss, route

__all__ = ["Expert", "MoE", "Routing", "load_balancing_loss", "route"]
