"""What one micro-batch does inside an update: the part of training that differs by feature.

The loop (:class:`~nasviz.training.Trainer`) owns everything around it: batches on the
device, autocast, accumulation, the optimizer and scaler, gradient clipping, the schedule,
NaN checks, checkpoints and events. A :class:`Step` only runs forward passes, computes losses
and hands them to ``trainer.backward``. Plain supervised training is :class:`SupervisedStep`;
supernet training plugs in a sandwich step, :func:`~nasviz.recover` a distillation step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from nasviz.training._loop import Trainer

__all__ = ["Step", "SupervisedStep"]


class Step(ABC):
    """One micro-batch's forward and backward work.

    Contract: :meth:`prepare` runs once in the caller's thread, before the run starts (checks
    that can fail early, modules sized from the first batch); :meth:`setup` / :meth:`teardown`
    at every start / end of the run; ``__call__`` once per micro-batch in the run's thread. It
    calls ``trainer.backward(loss)`` for what it trains and returns the losses it reports,
    by name (tensors, detached or not: the loop averages, checks and reports them).
    """

    #: whether the loss needs targets in the batches (distillation alone does not)
    needs_targets: bool = True

    def modules(self) -> list[nn.Module]:
        """Modules the step holds besides the model, saved in checkpoints: ones it trains (e.g.
        projections; their trainable parameters join the optimizer) or frozen ones."""
        return []

    def settings(self) -> dict[str, Any]:
        """The step's settings (JSON values) a checkpoint must match to resume."""
        return {}

    def prepare(self, trainer: Trainer, batch: Any) -> None:  # noqa: B027 - optional hook
        """Checks with the first batch (already on the device); nothing may change the model."""

    def setup(self, trainer: Trainer) -> None:  # noqa: B027 - optional hook
        """Called in the run's thread at every start."""

    def teardown(self, trainer: Trainer) -> None:  # noqa: B027 - optional hook
        """Called in the run's thread at every end (finished, stopped or failed)."""

    @abstractmethod
    def __call__(self, trainer: Trainer, batch: Any, step: int) -> Mapping[str, torch.Tensor]:
        """Forward, loss and ``trainer.backward`` on one micro-batch of update ``step``."""


class SupervisedStep(Step):
    """The model's loss on the batch (the trainer's ``loss_fn`` or the task's default)."""

    def __call__(self, trainer: Trainer, batch: Any, step: int) -> Mapping[str, torch.Tensor]:
        with trainer.autocast():
            outputs, targets = trainer.forward(trainer.model, batch)
            loss = trainer.loss(outputs, targets, batch)
        trainer.backward(loss)
        return {"loss": loss}
