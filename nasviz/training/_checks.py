"""Checks a training run makes: before it starts, in the caller's thread, the first batch goes
through the model and the loss, so a batch the model cannot take, targets that do not fit the
outputs, labels outside the model's classes or a loss that is not a scalar fail at once, with
the model unchanged (the pass runs in eval mode without gradients; the mode is restored); and
at every update, losses that are NaN or infinite (:func:`mean_losses`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nasviz.data._batch import default_batch_fn, logits_of, move, split_batch
from nasviz.errors import ConfigError, TrainingError
from nasviz.training._losses import check_labels, check_targets, infer_task, lm_targets
from nasviz.training._model import eval_mode

if TYPE_CHECKING:
    from nasviz.training._loop import Trainer

__all__ = ["check_first_batch", "check_scalar", "mean_losses"]


def check_scalar(loss: Any) -> None:
    """ConfigError unless ``loss`` is a one-element tensor."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ConfigError(f"the loss must be a scalar tensor, got {got}; reduce it (e.g. .mean())")


def check_first_batch(trainer: Trainer) -> None:
    """Runs the first batch through the model and the loss; sets ``trainer.task`` and plans
    the label checks; then lets the step check what it needs (``step.prepare``)."""
    batch = move(trainer.batches.first(), trainer.device)
    restore = eval_mode(trainer.model)
    try:
        with torch.no_grad(), trainer.autocast():
            outputs, targets = trainer.batch_fn(trainer.model, batch)
            if trainer.loss_fn is None:
                logits = logits_of(outputs)
                declared = trainer.task or trainer.batches.task
                trainer.task = infer_task(trainer.model, logits, targets, declared)
                if trainer.task == "causal_lm" and trainer.batch_fn is default_batch_fn:
                    targets = lm_targets(split_batch(batch)[0], targets)
                if targets is not None or trainer.step_fn.needs_targets:
                    check_targets(trainer.task, logits, targets)
                    _plan_label_checks(trainer, logits.shape[-1])
            if targets is not None or trainer.loss_fn is not None:
                check_scalar(trainer.loss(outputs, targets, batch))
        trainer.step_fn.prepare(trainer, batch)
    finally:
        restore()


def _plan_label_checks(trainer: Trainer, classes: int) -> None:
    """Labels in memory are checked now, all at once; a stream's batch by batch (on the CPU,
    before the copy to the device)."""
    task = trainer.task
    if task == "regression" or trainer.batch_fn is not default_batch_fn:
        return
    targets = trainer.batches.targets
    if targets is not None:
        check_labels(targets, classes, task)
    elif trainer.batches.kind != "memory":

        def check(batch: Any) -> None:
            labels = split_batch(batch)[1]
            if isinstance(labels, torch.Tensor):
                check_labels(labels, classes, task)

        trainer.cursor.check = check


def mean_losses(
    totals: dict[str, torch.Tensor], micro: int, step: int, epoch: int, checkpoint: Path | None
) -> dict[str, float]:
    """Mean loss per name over an update's micro-batches (one device sync), or a TrainingError
    when one is NaN or infinite: raised before the optimizer steps, so the weights stay."""
    names = list(totals)
    means = (torch.stack([totals[n] for n in names]) / micro).tolist() if names else []
    values = dict(zip(names, means, strict=True))
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        kept = f"; the last good checkpoint stays at {checkpoint}" if checkpoint is not None else ""
        raise TrainingError(
            f"non-finite loss ({', '.join(f'{k}={v}' for k, v in bad.items())}) at step {step + 1} "
            f"(epoch {epoch}): training stopped before this update changed the weights{kept}. "
            "Lower lr, set clip=, check the data for NaN or use fp32"
        )
    return values
