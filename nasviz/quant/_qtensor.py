"""Per-channel weight quantization: the arithmetic, bit packing and fake quantization (STE).

A weight is quantized per output channel: the dimensions in ``reduce`` (a layer's input
dimensions) share one scale, every other index has its own. Two schemes:

* **symmetric** (signed codes, no zero point): ``q = clamp(round(w / s), -2^(b-1), 2^(b-1) - 1)``
  with ``s = max|w| / (2^(b-1) - 1)``; ``w ~ s * q``. The default at 8 bits.
* **affine** (unsigned codes and a zero point): ``s = (max - min) / (2^b - 1)``,
  ``z = round(-min / s)``, ``q = clamp(round(w / s) + z, 0, 2^b - 1)``; ``w ~ s * (q - z)``.
  The range always contains 0, so zeros stay exact. The default below 8 bits.

16 bits means half precision (a cast, no scale); 32 means full precision (unchanged).

Codes are stored packed: two per byte for 3 and 4 bits, four per byte for 2 bits, one per byte
for 8 bits. :func:`fake_quantize` rounds in the forward pass and lets gradients through
unchanged (straight-through estimator), so a training loop can train through it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from nasviz.errors import ConfigError, check_int

__all__ = [
    "BITS",
    "INT_BITS",
    "QParams",
    "check_bits",
    "dequantize",
    "fake_quantize",
    "pack",
    "qrange",
    "quantize_tensor",
    "quantized_bytes",
    "unpack",
]

#: Integer bit-widths nasviz quantizes to (2 and 3 are for exploration: simulated kernels).
INT_BITS = (2, 3, 4, 8)
#: Every allowed bit-width: integers, 16 (half precision) and 32 (full precision, unchanged).
BITS = (*INT_BITS, 16, 32)


def check_bits(bits: object, what: str = "bits") -> int:
    """``bits`` as an int in :data:`BITS`, or a ConfigError naming ``what`` and the choices."""
    value = check_int(what, bits)
    if value not in BITS:
        raise ConfigError(
            f"{what}={value} is not a supported bit-width; use one of {list(BITS)} "
            "(2 and 3 are simulated, 16 is half precision, 32 leaves the weight as it is)"
        )
    return value


def qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    """The smallest and largest code of ``bits``-bit codes."""
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


class QParams(NamedTuple):
    """Quantization parameters of one weight.

    Attributes:
        scale: float32, the weight's shape with the ``reduce`` dimensions of size 1.
        zero_point: uint8 of the same shape (affine), or None (symmetric).
        bits: code width.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor | None
    bits: int


def _qparams(w: torch.Tensor, bits: int, reduce: Sequence[int], symmetric: bool) -> QParams:
    dims = tuple(reduce)
    w = w.detach().float()
    tiny = torch.finfo(torch.float32).tiny
    lo, hi = qrange(bits, symmetric)
    if symmetric:
        amax = w.abs().amax(dim=dims, keepdim=True) if w.numel() else w.new_zeros(())
        return QParams((amax / hi).clamp_min(tiny), None, bits)
    wmin = w.amin(dim=dims, keepdim=True).clamp_max(0.0)
    wmax = w.amax(dim=dims, keepdim=True).clamp_min(0.0)
    scale = ((wmax - wmin) / (hi - lo)).clamp_min(tiny)
    zero = torch.round(-wmin / scale).clamp(lo, hi).to(torch.uint8)
    return QParams(scale, zero, bits)


def quantize_tensor(
    w: torch.Tensor, bits: int, reduce: Sequence[int], symmetric: bool
) -> tuple[torch.Tensor, QParams]:
    """Integer codes (int16, the shape of ``w``) and the :class:`QParams` of ``w``.

    Args:
        w: a floating-point weight.
        bits: 2, 3, 4 or 8.
        reduce: dimensions that share a scale (the input dimensions of the layer).
        symmetric: signed codes without zero point, else unsigned codes with a zero point.
    """
    params = _qparams(w, bits, reduce, symmetric)
    lo, hi = qrange(bits, symmetric)
    q = torch.round(w.detach().float() / params.scale)
    if params.zero_point is not None:
        q = q + params.zero_point.float()
    return q.clamp(lo, hi).to(torch.int16), params


def dequantize(
    q: torch.Tensor, params: QParams, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``scale * (q - zero_point)`` in ``dtype``."""
    q = q.float()
    if params.zero_point is not None:
        q = q - params.zero_point.float()
    return (q * params.scale).to(dtype)


class _RoundSTE(torch.autograd.Function):
    """Quantize-dequantize in the forward pass; the gradient passes straight through."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, bits: int, reduce: tuple[int, ...], symmetric: bool):
        q, params = quantize_tensor(w, bits, reduce, symmetric)
        return dequantize(q, params, w.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None, None, None


def fake_quantize(
    w: torch.Tensor, bits: int, reduce: Sequence[int], symmetric: bool
) -> torch.Tensor:
    """``w`` rounded to its ``bits``-bit per-channel grid, same dtype and shape; gradients go
    straight through to ``w`` (STE). 16 bits rounds to half precision, 32 returns ``w``."""
    if bits == 32:
        return w
    if bits == 16:
        return w + (w.detach().half().to(w.dtype) - w.detach())
    return _RoundSTE.apply(w, bits, tuple(reduce), symmetric)


def container_bits(bits: int) -> int:
    """Bits one code occupies in packed storage (3-bit codes sit in 4-bit nibbles)."""
    return {2: 2, 3: 4, 4: 4, 8: 8}[bits]


def pack(q: torch.Tensor, bits: int, symmetric: bool) -> torch.Tensor:
    """Codes (any shape) packed into a flat uint8 tensor, ``8 // container_bits`` per byte."""
    lo, _ = qrange(bits, symmetric)
    width = container_bits(bits)
    flat = (q.reshape(-1).to(torch.int16) - lo).to(torch.uint8)  # unsigned offsets
    per = 8 // width
    pad = (-flat.numel()) % per
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    flat = flat.reshape(-1, per)
    out = torch.zeros(flat.shape[0], dtype=torch.uint8)
    for i in range(per):
        out |= flat[:, i] << (i * width)
    return out


def unpack(packed: torch.Tensor, bits: int, symmetric: bool, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`pack`: int16 codes of ``shape``."""
    lo, _ = qrange(bits, symmetric)
    width = container_bits(bits)
    per = 8 // width
    if per == 1:
        flat = packed.reshape(-1)[: math.prod(shape)].to(torch.int16)
    else:  # on int16: the ONNX exporter types a mask for uint8 as int8, which ONNX Runtime refuses
        wide = packed.to(torch.int16)
        parts = [(wide >> (i * width)) & ((1 << width) - 1) for i in range(per)]
        flat = torch.stack(parts, dim=1).reshape(-1)[: math.prod(shape)]
    return (flat + lo).reshape(tuple(shape))


def quantized_bytes(numel: int, channels: int, bits: int, symmetric: bool, float_size: int) -> int:
    """Bytes of one weight of ``numel`` values and ``channels`` scales at ``bits``: codes,
    float32 scales and (affine) uint8 zero points; 16 bits: half precision; 32: ``float_size``
    per value."""
    if bits in INT_BITS:
        return math.ceil(bits * numel / 8) + 4 * channels + (0 if symmetric else channels)
    if bits == 16:
        return 2 * numel
    return float_size * numel
