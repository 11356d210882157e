"""Multi-head self-attention with an elastic number of heads, and its static counterpart."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasviz._flops import attention_macs
from nasviz.supernet._ops import (
    ElasticLinear,
    OptimizerState,
    export_linear,
    importance_order,
    permute_rows,
)
from nasviz.supernet._prepared import Prepared

__all__ = ["ElasticAttention", "StaticAttention", "sdpa_macs"]


def sdpa_macs(batch: int, heads: int, length: int, head_dim: int) -> int:
    """MACs of ``F.scaled_dot_product_attention`` on (batch, heads, length, head_dim) inputs: its
    two matrix products, ``Q K^T`` and ``A V`` (see :func:`nasviz._flops.attention_macs`), as
    the math backend computes them and :func:`nasviz.objectives.count_macs` counts them."""
    return attention_macs(batch, heads, length, length, head_dim)


class ElasticAttention(nn.Module):
    """Self-attention holding ``max_heads`` heads of width ``head_dim``; a subnet uses the first
    ``heads`` of them (rows of the q/k/v projections, columns of the output projection)."""

    def __init__(self, dim: int, max_heads: int, head_dim: int):
        super().__init__()
        self.dim, self.max_heads, self.head_dim = dim, max_heads, head_dim
        inner = max_heads * head_dim
        self.q, self.k, self.v = (ElasticLinear(dim, inner) for _ in range(3))
        self.out = ElasticLinear(inner, dim)

    def forward(
        self, x: torch.Tensor, heads: int | None = None, prepared: Prepared | None = None
    ) -> torch.Tensor:
        # x: (B, T, D) -> (B, T, D)
        B, T, _ = x.shape
        h = self.max_heads if heads is None else heads
        width = h * self.head_dim
        q = self.q(x, width, prepared).view(B, T, h, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        k = self.k(x, width, prepared).view(B, T, h, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        v = self.v(x, width, prepared).view(B, T, h, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, h, T, hd)
        return self.out(y.transpose(1, 2).reshape(B, T, width), None, prepared)  # (B, T, D)

    def export(self, heads: int) -> StaticAttention:
        width = heads * self.head_dim
        return StaticAttention(
            heads,
            self.head_dim,
            export_linear(self.q, self.dim, width),
            export_linear(self.k, self.dim, width),
            export_linear(self.v, self.dim, width),
            export_linear(self.out, width, self.dim),
        )

    def count_params(self, heads: int) -> int:
        width = heads * self.head_dim
        return 3 * (self.dim * width + width) + width * self.dim + self.dim

    @torch.no_grad()
    def reorder_heads(self, optimizer_state: OptimizerState | None = None) -> None:
        """Sorts heads by the L1 norm of their output-projection columns (function unchanged;
        ``optimizer_state`` moves with the weights)."""
        scores = self.out.weight.abs().sum(0).view(self.max_heads, self.head_dim).sum(1)  # (H,)
        heads = importance_order(scores)
        order = (heads[:, None] * self.head_dim + torch.arange(self.head_dim)).reshape(-1)
        for layer in (self.q, self.k, self.v):
            permute_rows(layer.weight, order, 0, optimizer_state)
            permute_rows(layer.bias, order, 0, optimizer_state)
        permute_rows(self.out.weight, order, 1, optimizer_state)


class StaticAttention(nn.Module):
    """Plain multi-head self-attention from four ``nn.Linear`` layers (an exported subnet's)."""

    def __init__(
        self, heads: int, head_dim: int, q: nn.Linear, k: nn.Linear, v: nn.Linear, out: nn.Linear
    ):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.q, self.k, self.v, self.out = q, k, v, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D) -> (B, T, D)
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        k = self.k(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        v = self.v(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, h, T, hd)
        return self.out(y.transpose(1, 2).reshape(B, T, self.heads * self.head_dim))  # (B, T, D)
