"""Devices and numeric precision: which device a job runs on, and autocast / loss scaling.

``device``: ``None`` (where the model already is), ``"auto"`` (the first CUDA device, else
Apple's MPS, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a
``torch.device``. A device this machine does not have is a ConfigError that lists the ones it
has.

``precision``: ``"fp32"`` (no autocast), ``"bf16"`` (``torch.autocast`` to bfloat16: CPU, CUDA
with bf16 support, MPS) or ``"fp16"`` (autocast to float16 with a ``GradScaler``; CUDA and MPS
only). fp16 on a CPU is refused with a clear error rather than silently run: CPU kernels gain
nothing from it, and bf16 trains on the CPU without loss scaling.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasviz.errors import ConfigError

__all__ = [
    "PRECISIONS",
    "Precision",
    "available_devices",
    "model_device",
    "resolve_device",
    "resolve_precision",
]

#: Precisions ``precision=`` names: full, bfloat16 and float16 autocast.
PRECISIONS = ("fp32", "bf16", "fp16")
_FORMS = "None, 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device"


def available_devices() -> list[str]:
    """The devices this machine has, as strings (``"cpu"``, ``"cuda:0"``, ..., ``"mps"``)."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def model_device(model: Any) -> torch.device:
    """Where a module's first parameter (or buffer) lives; the CPU for anything else."""
    if isinstance(model, nn.Module):
        for tensor in model.parameters():
            return tensor.device
        for tensor in model.buffers():
            return tensor.device
    return torch.device("cpu")


def resolve_device(device: Any = None, model: Any = None) -> torch.device:
    """The ``torch.device`` that ``device`` names (see the module docstring).

    Raises:
        ConfigError: an unknown name, or a device this machine does not have (the message
            lists the available ones).
    """
    if device is None:
        return model_device(model)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device must be {_FORMS}; got {device!r}") from None
    missing = ConfigError(
        f"device {str(device)!r} is not available on this machine; available: "
        f"{', '.join(available_devices())} (or 'auto')"
    )
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise missing
        index = torch.cuda.current_device() if resolved.index is None else resolved.index
        if index >= torch.cuda.device_count():
            raise missing
        return torch.device("cuda", index)
    if resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise missing
        return resolved
    if resolved.type == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"device must be {_FORMS}; got {device!r}")


@dataclass(frozen=True)
class Precision:
    """How forward passes run: ``autocast()`` and, for fp16, a new ``scaler()``."""

    name: str
    device: torch.device

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None for fp32)."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` to :attr:`dtype` on the device (nothing for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """A fresh GradScaler for fp16 (None otherwise)."""
        return torch.amp.GradScaler(self.device.type) if self.name == "fp16" else None


def resolve_precision(precision: Any, device: torch.device) -> Precision:
    """The :class:`Precision` for ``precision`` on ``device``, or a ConfigError that says why not."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError(
            "precision='fp16' needs a CUDA or MPS device: on a CPU, fp16 autocast is slow and "
            "needs loss scaling; use precision='bf16' (or 'fp32') on the CPU"
        )
    if (
        precision == "bf16"
        and device.type == "cuda"
        and not torch.cuda.is_bf16_supported(including_emulation=False)
    ):
        raise ConfigError(
            f"precision='bf16' is not supported by {torch.cuda.get_device_name(device)}; "
            "use precision='fp16'"
        )
    return Precision(precision, device)
