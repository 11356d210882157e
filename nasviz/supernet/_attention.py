"""Multi-head self-attention with an elastic number of heads, and its static counterpart."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasviz.supernet._ops import ElasticLinear, export_linear, importance_order, permute_rows

__all__ = ["ElasticAttention", "StaticAttention"]


class ElasticAttention(nn.Module):
    """Self-attention holding ``max_heads`` heads of width ``head_dim``; a subnet uses the first
    ``heads`` of them (rows of the q/k/v projections, columns of the output projection)."""

    def __init__(self, dim: int, max_heads: int, head_dim: int):
        super().__init__()
        self.dim, self.max_heads, self.head_dim = dim, max_heads, head_dim
        inner = max_heads * head_dim
        self.q, self.k, self.v = (ElasticLinear(dim, inner) for _ in range(3))
        self.out = ElasticLinear(inner, dim)

    def forward(self, x: torch.Tensor, heads: int | None = None) -> torch.Tensor:
        # x: (B, T, D) -> (B, T, D)
        B, T, _ = x.shape
        h = self.max_heads if heads is None else heads
        width = h * self.head_dim
        q = self.q(x, width).view(B, T, h, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        k = self.k(x, width).view(B, T, h, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        v = self.v(x, width).view(B, T, h, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, h, T, hd)
        return self.out(y.transpose(1, 2).reshape(B, T, width))  # (B, T, D)

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
    def reorder_heads(self) -> None:
        """Sorts heads by the L1 norm of their output-projection columns (function unchanged)."""
        scores = self.out.weight.abs().sum(0).view(self.max_heads, self.head_dim).sum(1)  # (H,)
        heads = importance_order(scores)
        order = (heads[:, None] * self.head_dim + torch.arange(self.head_dim)).reshape(-1)
        for layer in (self.q, self.k, self.v):
            permute_rows(layer.weight, order)
            permute_rows(layer.bias, order)
        permute_rows(self.out.weight, order, dim=1)


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
