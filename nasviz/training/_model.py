"""What training and measuring need to know about a model: is it a module, a supernet, a causal
language model; which mode it is in; which subnet it computes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from torch import nn

from nasviz.errors import ConfigError

__all__ = ["active_subnet", "as_module", "eval_mode", "is_causal_lm", "is_supernet"]


def is_supernet(model: Any) -> bool:
    """Whether ``model`` follows the supernet protocol (``subnet(arch)`` and ``export(arch)``)."""
    return hasattr(model, "subnet") and hasattr(model, "export")


def as_module(model: Any) -> nn.Module:
    """``model`` itself, or a ConfigError when it is not a torch module."""
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"expected a torch nn.Module (or a supernet with an arch), got {type(model).__name__}"
        )
    return model


def active_subnet(model: Any, arch: Any) -> contextlib.AbstractContextManager:
    """Context in which ``model(x)`` computes the subnet ``arch`` (a no-op without one)."""
    if arch is None:
        return contextlib.nullcontext()
    if not is_supernet(model):
        raise ConfigError(
            f"an arch was given but {type(model).__name__} is not a supernet "
            "(it needs subnet(arch) and export(arch))"
        )
    return model.subnet(arch)


def eval_mode(model: nn.Module) -> Callable[[], None]:
    """Puts ``model`` in eval mode; returns the function that restores its mode.

    A model already in eval mode is not touched at all, so concurrent evaluations of one
    (supernet) model from several threads never flip each other's mode. Restoring gives every
    submodule back its own mode (a frozen BatchNorm the user put in eval mode inside a training
    model stays in eval mode).
    """
    if not model.training:
        return lambda: None
    modes = [(module, module.training) for module in model.modules()]
    model.eval()

    def restore() -> None:
        for module, training in modes:
            module.training = training

    return restore


def is_causal_lm(model: Any) -> bool:
    """A Hugging Face decoder that generates text (its labels are the next tokens)."""
    config = getattr(model, "config", None)
    can_generate = getattr(model, "can_generate", None)
    if config is None or not callable(can_generate):
        return False
    try:
        generates = bool(can_generate())
    except Exception:  # an odd model's can_generate: not a causal LM then
        return False
    return generates and not getattr(config, "is_encoder_decoder", False)
