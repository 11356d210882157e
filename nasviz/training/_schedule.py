"""Optimizers by name and learning-rate schedules as pure functions of the step.

A schedule is ``factor(step, total) -> float`` multiplying the peak learning rate; it keeps no
state, so a resumed run continues on exactly the same curve. Built-ins (with a linear warm-up
over the first ``warmup`` fraction of the steps):

* ``"cosine"`` (default): from the peak down to 0 along a half cosine;
* ``"linear"``: from the peak straight down to 0;
* ``"constant"``: the peak throughout.

Optimizers: ``"adamw"`` (default), ``"adam"``, ``"sgd"`` (momentum 0.9), or a callable
``make(params, lr) -> torch.optim.Optimizer`` (the caller's own; weight decay is then theirs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from nasviz.errors import ConfigError

__all__ = ["OPTIMIZERS", "SCHEDULES", "lr_factor", "make_optimizer"]

Schedule = Callable[[int, int], float]
#: Learning-rate schedules ``schedule=`` names (after the warm-up).
SCHEDULES = ("cosine", "linear", "constant")
#: Optimizers ``optimizer=`` names.
OPTIMIZERS = ("adamw", "adam", "sgd")


def lr_factor(schedule: str | Schedule, step: int, total: int, warmup: float = 0.0) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of ``total`` steps."""
    if callable(schedule):
        return float(schedule(step, total))
    ramp = int(warmup * total)
    if step < ramp:
        return (step + 1) / ramp
    if schedule == "constant":
        return 1.0
    t = (step - ramp) / max(total - ramp, 1)
    return 1.0 - t if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))


def check_schedule(schedule: Any) -> str | Schedule:
    if not callable(schedule) and schedule not in SCHEDULES:
        raise ConfigError(
            f"schedule must be one of {SCHEDULES} or a function (step, total) -> factor; "
            f"got {schedule!r}"
        )
    return schedule


def make_optimizer(
    kind: Any, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """An optimizer over ``params`` (see the module docstring)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters (all have requires_grad=False)")
    if callable(kind):
        optimizer = kind(params, lr)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigError(
                f"optimizer(params, lr) must return a torch.optim.Optimizer, got "
                f"{type(optimizer).__name__}"
            )
        return optimizer
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ConfigError(
        f"optimizer must be one of {OPTIMIZERS} or a function (params, lr) -> Optimizer; "
        f"got {kind!r}"
    )
