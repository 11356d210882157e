"""Model size in bytes, exact for full-precision, quantized and joint (arch + bits) models.

:func:`count_bytes` adds up every tensor of a model's state dict (parameters and persistent
buffers, a shared tensor once) at its stored size, except nasviz-quantized weights, which count
``ceil(bits * weights / 8)`` (3-bit codes count 3 bits even though they are stored in 4-bit
nibbles) plus their scales (4 bytes each) and zero points (1 byte each, affine only). A torch.ao
quantized tensor counts one byte per int8 value plus its scales and zero points at their stored
sizes (float64 and int64 per channel). :func:`model_bytes` is the objective.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasviz.errors import ConfigError
from nasviz.objectives import Objective
from nasviz.quant._modules import QuantizedWeight
from nasviz.quant._qtensor import quantized_bytes

__all__ = ["count_bytes", "model_bytes", "quantized_bytes", "tensor_bytes"]


def tensor_bytes(t: torch.Tensor) -> int:
    """Stored bytes of one tensor (a torch.ao quantized one with its scales and zero points)."""
    total = t.numel() * t.element_size()
    if t.is_quantized:
        if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            for extra in (t.q_per_channel_scales(), t.q_per_channel_zero_points()):
                total += extra.numel() * extra.element_size()
        else:
            total += 8 + 8  # one float64 scale and one int64 zero point
    return total


def _value_bytes(value: Any, seen: set[int]) -> int:
    if isinstance(value, torch.Tensor):
        if id(value) in seen:
            return 0
        seen.add(id(value))
        return tensor_bytes(value)
    if isinstance(value, tuple | list):
        return sum(_value_bytes(v, seen) for v in value)
    return 0  # dtypes and other metadata torch.ao keeps in its state dicts


def count_bytes(model: nn.Module) -> int:
    """Exact bytes of ``model``'s state (see the module docstring)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"count_bytes expects a torch nn.Module, got {type(model).__name__}")
    total, skip = 0, []
    for name, module in model.named_modules():
        if isinstance(module, QuantizedWeight):
            total += module.stored_bytes()
            skip.append(f"{name}.")
    seen: set[int] = set()
    for key, value in model.state_dict(keep_vars=True).items():
        if not any(key.startswith(prefix) for prefix in skip):
            total += _value_bytes(value, seen)
    return total


def model_bytes() -> Objective:
    """Model size in bytes (minimize; cheap and exact): :func:`count_bytes` of a model, of a
    supernet's exported subnet, or of a joint arch of a :class:`~nasviz.quant.QuantSupernet`
    (its closed form, without quantizing anything).

    "Cheap" means no data and no forward pass, but a supernet's subnet is still exported once
    per distinct architecture (a few ms for the built-in ones), which a predictor-guided
    search does for its ``cheap_samples`` random archs every cycle."""

    def fn(model: Any, arch: Any) -> float:
        if arch is None:
            return float(count_bytes(model))
        if hasattr(model, "count_bytes"):
            return float(model.count_bytes(arch))
        if not hasattr(model, "export"):
            raise ConfigError(
                f"an arch was given but {type(model).__name__} is not a supernet (no export)"
            )
        return float(count_bytes(model.export(arch)))

    return Objective("model_bytes", "minimize", fn, cheap=True, unit="B", needs_model=True)
