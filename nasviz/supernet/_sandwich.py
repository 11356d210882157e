"""The sandwich step: what supernet training plugs into the training loop.

On one micro-batch it trains the largest subnet on the labels, then the smallest and the random
subnets on a mix of the labels and the largest's soft outputs (in-place distillation); their
gradients add up for the loop's one optimizer update. With a separate ``teacher`` model, the
largest also learns from the teacher's soft outputs (the smaller ones still from the largest).
Which subnets train, and with which weight, is the trainer's schedule
(:meth:`SupernetTrainer.members`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from nasviz.data._batch import logits_of
from nasviz.training import Step
from nasviz.training._device import model_device

if TYPE_CHECKING:
    from nasviz.supernet._train import SupernetTrainer

__all__ = ["SandwichStep"]


def _soft_loss(outputs: torch.Tensor, soft: torch.Tensor, task: str) -> torch.Tensor:
    """The loss against a teacher's soft outputs: cross-entropy with its probabilities, or
    (regression) the squared distance to its values."""
    if task == "regression":
        return F.mse_loss(outputs.float(), soft.float())
    return -(soft * F.log_softmax(outputs, -1)).sum(-1).mean()


def _soft_targets(outputs: torch.Tensor, task: str) -> torch.Tensor:
    return outputs.detach() if task == "regression" else outputs.detach().softmax(-1)


class SandwichStep(Step):
    """Largest, smallest and random subnets on one micro-batch (see the module docstring)."""

    def __init__(self, teacher: nn.Module | None = None, owned: bool = False):
        self.teacher = teacher
        self.owned = owned  # a frozen copy the step made (teacher="original"): checkpointed
        self._home: tuple[torch.device, bool] | None = None

    def modules(self) -> list[nn.Module]:
        """The original's frozen copy (saved in checkpoints; it has nothing to train)."""
        return [self.teacher] if self.owned and self.teacher is not None else []

    def setup(self, trainer: SupernetTrainer) -> None:
        if self.teacher is not None:
            self._home = (model_device(self.teacher), self.teacher.training)
            self.teacher.to(trainer.device).eval()

    def teardown(self, trainer: SupernetTrainer) -> None:
        if self.teacher is not None and self._home is not None:
            device, training = self._home
            self.teacher.to(device).train(training)
            self._home = None

    def __call__(
        self, trainer: SupernetTrainer, batch: Any, step: int
    ) -> Mapping[str, torch.Tensor]:
        s, net, task = trainer.settings, trainer.net, trainer.task
        distill = s["distill"]
        external = None
        if self.teacher is not None and distill > 0:
            with torch.no_grad(), trainer.autocast():
                external = _soft_targets(logits_of(trainer.forward(self.teacher, batch)[0]), task)
        losses: dict[str, torch.Tensor] = {}
        soft = external
        for name, arch, weight in trainer.members(step):
            with net.subnet(arch), trainer.autocast():
                outputs, targets = trainer.forward(net, batch)
                logits = logits_of(outputs)  # (B, C)
                loss = trainer.loss(outputs, targets, batch)
                if soft is not None and distill > 0:
                    loss = (1.0 - distill) * loss + distill * _soft_loss(logits, soft, task)
                if hasattr(net, "aux_loss") and s["aux_weight"]:
                    loss = loss + s["aux_weight"] * net.aux_loss()
            if weight > 0:
                trainer.backward(loss, weight)
            if name == "largest":
                soft = _soft_targets(logits, task)  # (B, C): in-place distillation
            losses[name] = loss.detach()
        return losses
