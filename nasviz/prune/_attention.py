"""Whole-head pruning of torch's ``nn.MultiheadAttention``.

``nn.MultiheadAttention`` ties its inner width (heads x head_dim) to ``embed_dim``, the width of
its query input, so heads cannot be cut out of it in place (Torch-Pruning's pruner for it
narrows ``embed_dim`` itself, the whole residual stream, and keeps the head count). nasviz
therefore masks whole heads (their rows of ``in_proj_weight`` / ``in_proj_bias`` and their
columns of ``out_proj.weight``) and, when shrinking, swaps the module for
:class:`HeadAttention`: the same computation with separate ``q``/``k``/``v``/``out`` Linear
layers holding only the kept heads, called the same way (``nn.TransformerEncoderLayer`` and
friends keep working; they take their slow, exact path).

Supported: packed projections (``kdim == vdim == embed_dim``), no ``add_bias_kv``, no
``add_zero_attn``. Other configurations are left alone and :func:`nasviz.prune.channels` says
so with a NasvizWarning.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HeadAttention", "mha_modules", "replace_heads", "unsupported_mha"]


def _supported(m: nn.MultiheadAttention) -> bool:
    return (
        m._qkv_same_embed_dim
        and m.in_proj_weight is not None
        and m.bias_k is None
        and m.bias_v is None
        and not m.add_zero_attn
    )


def mha_modules(model: nn.Module) -> dict[str, nn.MultiheadAttention]:
    """The ``nn.MultiheadAttention`` modules of ``model`` whose heads nasviz can prune."""
    return {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, nn.MultiheadAttention) and _supported(m)
    }


def unsupported_mha(model: nn.Module) -> list[str]:
    """Names of ``nn.MultiheadAttention`` modules whose heads nasviz leaves alone."""
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.MultiheadAttention) and not _supported(m)
    ]


class HeadAttention(nn.Module):
    """Multi-head attention over the kept heads of an ``nn.MultiheadAttention``.

    Args:
        q, k, v: projections to ``heads * head_dim`` features.
        out: projection back to the model width.
        heads: number of kept heads.
        head_dim: width of one head (unchanged by pruning, so the softmax scale is too).
        kept: indices of the kept heads in the original module (selects a per-head
            ``attn_mask`` of shape ``(N * original_heads, L, S)``).
        batch_first: as the original module.
        dropout: attention dropout probability (training only).
    """

    # read by nn.Transformer* fast-path checks: this module never takes the fused path
    _qkv_same_embed_dim = False
    in_proj_bias = None

    def __init__(
        self,
        q: nn.Linear,
        k: nn.Linear,
        v: nn.Linear,
        out: nn.Linear,
        heads: int,
        head_dim: int,
        kept: list[int],
        batch_first: bool,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.q, self.k, self.v, self.out = q, k, v, out
        self.heads, self.head_dim = heads, head_dim
        self.kept = list(kept)
        self.batch_first, self.dropout = batch_first, dropout

    @property
    def num_heads(self) -> int:
        return self.heads

    @property
    def embed_dim(self) -> int:
        return self.out.out_features

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,  # a hint only, as in nn.MultiheadAttention: attn_mask rules
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if not batched:  # (L, E): one sequence
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, length, _ = query.shape
        source = key.shape[1]
        h, d = self.heads, self.head_dim
        q = self.q(query).view(n, length, h, d).transpose(1, 2)  # (N, h, L, d)
        k = self.k(key).view(n, source, h, d).transpose(1, 2)  # (N, h, S, d)
        v = self.v(value).view(n, source, h, d).transpose(1, 2)  # (N, h, S, d)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (N, h, L, S)
        scores = scores + self._bias(attn_mask, key_padding_mask, n, scores.dtype)
        weights = F.dropout(scores.softmax(-1), self.dropout, self.training)  # (N, h, L, S)
        out = (weights @ v).transpose(1, 2).reshape(n, length, h * d)  # (N, L, h*d)
        out = self.out(out)  # (N, L, E)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)  # (L, N, E)
        if not need_weights:
            return out, None
        weights = weights.mean(1) if average_attn_weights else weights  # mean over kept heads
        return out, weights if batched else weights.squeeze(0)

    def _bias(
        self,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        n: int,
        dtype: torch.dtype,
    ) -> torch.Tensor | float:
        """Additive attention bias broadcastable to (N, h, L, S): -inf where a bool mask is
        True, the float mask's values otherwise."""
        bias: torch.Tensor | float = 0.0
        if attn_mask is not None:
            m = _additive(attn_mask, dtype)
            if m.dim() == 3:  # (N * original heads, L, S): keep the rows of the kept heads
                m = m.view(n, -1, *m.shape[-2:])[:, self.kept]  # (N, h, L, S)
            bias = bias + m
        if key_padding_mask is not None:
            bias = bias + _additive(key_padding_mask, dtype)[:, None, None, :]  # (N, 1, 1, S)
        return bias


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, float("-inf")
        )
    return mask.to(dtype)


def head_columns(kept: list[int], head_dim: int) -> torch.Tensor:
    """Indices of the rows (q/k/v) or columns (out) of heads ``kept``, in order."""
    return (torch.as_tensor(kept)[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)


def linear_of(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """A new ``nn.Linear`` holding copies of ``weight`` (out, in) and ``bias``."""
    layer = nn.Linear(
        weight.shape[1],
        weight.shape[0],
        bias=bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def replace_heads(model: nn.Module, name: str, dead: list[int]) -> HeadAttention:
    """Swaps the ``nn.MultiheadAttention`` at ``name`` in ``model`` for a :class:`HeadAttention`
    without heads ``dead``; returns the new module."""
    mha = model.get_submodule(name)
    e, d = mha.embed_dim, mha.head_dim
    kept = [h for h in range(mha.num_heads) if h not in set(dead)]
    cols = head_columns(kept, d)  # (kept * d,)
    w, b = mha.in_proj_weight.detach(), mha.in_proj_bias
    parts = []
    for i in range(3):  # q, k, v blocks of the packed projection
        rows = cols + i * e
        parts.append(linear_of(w[rows], None if b is None else b.detach()[rows]))
    out_proj = mha.out_proj
    out = linear_of(
        out_proj.weight.detach()[:, cols],
        None if out_proj.bias is None else out_proj.bias.detach(),
    )
    new = HeadAttention(*parts, out, len(kept), d, kept, mha.batch_first, mha.dropout)
    new.train(mha.training)
    if name:  # the root module itself cannot be swapped in place: the caller uses the return
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, new)
    return new
