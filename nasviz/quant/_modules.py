"""Quantized weights as parametrizations: stored codes (PTQ) and fake quantization (QAT).

Both attach to a module's weight with :func:`torch.nn.utils.parametrize.register_parametrization`,
so the module's own forward runs unchanged and reads ``module.weight``:

* :class:`QuantizedWeight` stores packed integer codes, per-channel scales and zero points as
  buffers and drops the float weight (its ``original`` is an empty tensor); ``module.weight``
  is the dequantized weight. Compute is simulated (dequantize, then the float kernel); the
  storage is real, and its state dict holds plain tensors only (``torch.load(...,
  weights_only=True)`` reads it).
* :class:`QuantizedExperts` is the same for a stacked experts parameter, one
  :class:`QuantizedWeight` (with its own bit-width) per expert.
* :class:`FakeQuantize` keeps the float weight as the trainable ``original`` and rounds it in
  every forward pass with a straight-through estimator: a training loop trains through it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nasviz.quant._qtensor import (
    INT_BITS,
    QParams,
    dequantize,
    fake_quantize,
    pack,
    quantize_tensor,
    quantized_bytes,
    unpack,
)

__all__ = ["FakeQuantize", "QuantizedExperts", "QuantizedWeight"]


def _scheme(symmetric: bool) -> str:
    return "symmetric" if symmetric else "affine"


class QuantizedWeight(nn.Module):
    """A weight stored as ``bits``-bit per-channel codes (or half / full precision).

    Args:
        weight: the float weight to quantize (copied, not kept).
        bits: 2, 3, 4, 8 (codes), 16 (half precision) or 32 (kept as it is).
        reduce: dimensions sharing one scale (the layer's input dimensions).
        symmetric: signed codes without zero points, else affine codes with zero points.

    Thread contract: read-only after construction; many threads may run forward at once.
    """

    kernel = "simulated"

    def __init__(
        self, weight: torch.Tensor, bits: int, reduce: Sequence[int], symmetric: bool
    ) -> None:
        super().__init__()
        self.bits, self.reduce, self.symmetric = int(bits), tuple(reduce), bool(symmetric)
        self.shape, self.dtype = tuple(weight.shape), weight.dtype
        w = weight.detach()
        if self.bits in INT_BITS:
            q, params = quantize_tensor(w, self.bits, self.reduce, self.symmetric)
            self.register_buffer("packed", pack(q, self.bits, self.symmetric))
            self.register_buffer("scale", params.scale.contiguous())
            self.register_buffer("zero_point", params.zero_point)
        elif self.bits == 16:
            self.register_buffer("fp16", w.to(torch.float16).clone())
        else:
            self.register_buffer("values", w.clone())

    def codes(self) -> torch.Tensor:
        """The integer codes (int16, the weight's shape); only for 2, 3, 4 and 8 bits."""
        return unpack(self.packed, self.bits, self.symmetric, self.shape)

    def forward(self, original: torch.Tensor | None = None) -> torch.Tensor:
        if self.bits in INT_BITS:
            params = QParams(self.scale, self.zero_point, self.bits)
            return dequantize(self.codes(), params, self.dtype)
        return (self.fp16 if self.bits == 16 else self.values).to(self.dtype)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.new_empty(0)  # the float weight is not kept

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def stored_bytes(self) -> int:
        """Exact bytes of the quantized weight: ``ceil(bits * weights / 8)`` plus scales and
        zero points at their stored sizes (4 and 1 bytes each); 2 per weight at 16 bits."""
        channels = self.scale.numel() if self.bits in INT_BITS else 0
        size = self.values.element_size() if self.bits == 32 else 4
        return quantized_bytes(self.numel, channels, self.bits, self.symmetric, size)

    def extra_repr(self) -> str:
        if self.bits in INT_BITS:
            return f"bits={self.bits}, {_scheme(self.symmetric)}, per-channel, {self.kernel}"
        return f"bits={self.bits}"


class QuantizedExperts(nn.Module):
    """A stacked experts parameter ``(E, ...)`` stored as one :class:`QuantizedWeight` per
    expert, each with its own bit-width (mixed-precision experts)."""

    kernel = "simulated"

    def __init__(
        self,
        weight: torch.Tensor,
        bits: Sequence[int],
        reduce: Sequence[int],
        symmetric: Sequence[bool],
    ) -> None:
        super().__init__()
        self.experts = nn.ModuleList(
            QuantizedWeight(weight[j], b, reduce, s)
            for j, (b, s) in enumerate(zip(bits, symmetric, strict=True))
        )

    def forward(self, original: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([q() for q in self.experts])  # (E, ...)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.new_empty(0)

    def stored_bytes(self) -> int:
        return sum(q.stored_bytes() for q in self.experts)


class FakeQuantize(nn.Module):
    """Rounds the weight to a ``bits``-bit per-channel grid in every forward pass; gradients
    reach the float weight unchanged (straight-through estimator).

    Scales follow the weight as it trains (recomputed each forward from its current range).
    :func:`nasviz.quant.convert` turns it into a :class:`QuantizedWeight` with the same grid.
    """

    kernel = "simulated"

    def __init__(self, bits: int, reduce: Sequence[int], symmetric: bool) -> None:
        super().__init__()
        self.bits, self.reduce, self.symmetric = int(bits), tuple(reduce), bool(symmetric)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize(weight, self.bits, self.reduce, self.symmetric)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, {_scheme(self.symmetric)}, straight-through"
