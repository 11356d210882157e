"""Counting multiply-accumulates with torch's FLOP counter, attention included.

:class:`torch.utils.flop_counter.FlopCounterMode` has formulas for the attention kernels of
CUDA devices but none for the kernel that ``F.scaled_dot_product_attention`` dispatches to on
CPU tensors, so on CPU it counts attention's two matrix products (``Q K^T`` and ``A V``) as 0.
Nor does it count the fused "fast path" kernels ``nn.MultiheadAttention`` and
``nn.TransformerEncoderLayer`` take in inference (projections, attention and FFN: all 0).
:func:`flop_counter` adds formulas for those kernels, so a count is the same on every device
and equals what the math backend's explicit matrix products count.
:func:`attention_macs` is the attention formula in closed form (supernets' ``count_macs``).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["attention_macs", "flop_counter"]

#: Attention kernels FlopCounterMode has no formula for (those this torch build has).
_UNCOUNTED = tuple(
    getattr(torch.ops.aten, name)
    for name in (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_fused_attention_overrideable",
    )
    if hasattr(torch.ops.aten, name)
)


def attention_macs(
    batch: int, heads: int, q_len: int, kv_len: int, head_dim: int, v_dim: int | None = None
) -> int:
    """MACs of scaled dot-product attention: ``Q K^T`` (``q_len x kv_len`` scores of width
    ``head_dim`` per head) plus ``A V`` (``q_len x v_dim`` outputs summing ``kv_len`` terms),
    as the math backend computes them (a causal mask computes, and counts, the full product).
    Softmax and scaling are element-wise and count nothing, as everywhere in nasviz."""
    v_dim = head_dim if v_dim is None else v_dim
    return batch * heads * q_len * kv_len * (head_dim + v_dim)


def _attention_flops(
    query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any
) -> int:
    """FLOPs (2 per MAC) of one attention call, from its argument shapes (any head layout
    ``(..., heads, length, dim)``; grouped-query keys and values count per query head)."""
    *lead, heads, q_len, head_dim = query_shape
    kv_len, v_dim = key_shape[-2], value_shape[-1]
    batch = 1
    for d in lead:
        batch *= d
    return 2 * attention_macs(batch, heads, q_len, kv_len, head_dim, v_dim)


def _sequences(x: torch.Tensor) -> list[tuple[int, int]]:
    """(batch, tokens) groups of a ``(B, T, E)`` input: one group, or one per sequence of a
    nested tensor (the fast path drops padding by nesting, so only real tokens compute)."""
    if x.is_nested:
        return [(1, t.shape[0]) for t in x.unbind()]
    return [(x.shape[0], x.shape[1])] if x.dim() == 3 else [(1, x.shape[0])]


def _fused_attention_macs(query: torch.Tensor, key: torch.Tensor, qkv_weight: torch.Tensor) -> int:
    """MACs of the fused multi-head attention kernel: q, k, v projections, attention, output
    projection (heads do not change the count)."""
    dim = qkv_weight.shape[1]
    total = 0
    for (b, tq), (_, tk) in zip(_sequences(query), _sequences(key), strict=True):
        total += b * (tq + 2 * tk) * dim * dim  # q, k, v projections
        total += attention_macs(b, 1, tq, tk, dim)  # all heads together: h * (dim / h) = dim
        total += b * tq * dim * dim  # output projection
    return total


def _mha_flops(
    query: torch.Tensor,
    key: torch.Tensor,
    value: Any,
    dim: int,
    heads: int,
    qkv_weight: Any,
    *rest: Any,
    **kwargs: Any,
) -> int:
    """FLOPs of ``aten._native_multi_head_attention`` (``nn.MultiheadAttention``'s fast path)."""
    return 2 * _fused_attention_macs(query, key, qkv_weight)


def _encoder_layer_flops(
    src: torch.Tensor,
    dim: int,
    heads: int,
    qkv_weight: torch.Tensor,
    qkv_bias: Any,
    proj_weight: Any,
    proj_bias: Any,
    use_gelu: Any,
    norm_first: Any,
    eps: Any,
    norm_weight_1: Any,
    norm_bias_1: Any,
    norm_weight_2: Any,
    norm_bias_2: Any,
    ffn_weight_1: torch.Tensor,
    *rest: Any,
    **kwargs: Any,
) -> int:
    """FLOPs of ``aten._transformer_encoder_layer_fwd`` (``nn.TransformerEncoderLayer``'s fast
    path): self-attention plus the FFN's two linears."""
    tokens = sum(b * t for b, t in _sequences(src))
    ffn = 2 * tokens * dim * ffn_weight_1.shape[0]
    return 2 * (_fused_attention_macs(src, src, qkv_weight) + ffn)


def _raw(formula: Any) -> Any:
    formula._get_raw = True  # FlopCounterMode passes the tensors themselves, not their shapes
    return formula


#: op -> formula, for kernels FlopCounterMode leaves out (those this torch build has).
_EXTRA = {
    **dict.fromkeys(_UNCOUNTED, _attention_flops),
    **{
        getattr(torch.ops.aten, name): _raw(formula)
        for name, formula in (
            ("_native_multi_head_attention", _mha_flops),
            ("_transformer_encoder_layer_fwd", _encoder_layer_flops),
        )
        if hasattr(torch.ops.aten, name)
    },
}


def flop_counter() -> Any:
    """A :class:`~torch.utils.flop_counter.FlopCounterMode` (no printed table) that also counts
    attention on CPU and torch's fused transformer kernels: use ``with flop_counter() as c:
    model(x)``, then ``c.get_total_flops()``."""
    from torch.utils import flop_counter as fc

    return fc.FlopCounterMode(display=False, custom_mapping=dict(_EXTRA))
