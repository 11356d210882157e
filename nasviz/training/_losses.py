"""Tasks and their default losses, target checks, and the distillation loss.

Three tasks, each with a default loss:

* ``"classification"`` — cross-entropy of logits ``(B, C)`` against labels ``(B,)``, or token
  by token, ``(B, T, C)`` against ``(B, T)``; labels ``-100`` are ignored (Hugging Face's
  convention).
* ``"regression"`` — mean squared error of outputs against float targets of the same shape
  (outputs ``(B, 1)`` match targets ``(B,)``).
* ``"causal_lm"`` — next-token cross-entropy: the logits at position t predict the label at
  t + 1 (the labels are shifted inside, as Hugging Face's causal LMs do), ``-100`` ignored.
  Without labels, the input ids are the labels (padding, ``attention_mask == 0``, ignored).

Which task (:func:`infer_task`): the ``task`` the caller or the data declares; else
``"regression"`` for float targets; else ``"causal_lm"`` for a Hugging Face model that generates
text (``can_generate()``, not an encoder-decoder) with token-level labels; else
``"classification"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from nasviz.data._batch import describe
from nasviz.errors import ConfigError, ShapeError
from nasviz.training._model import is_causal_lm

__all__ = [
    "IGNORE_INDEX",
    "TASKS",
    "check_labels",
    "check_targets",
    "distillation_loss",
    "infer_task",
    "lm_targets",
    "next_token_loss",
    "task_loss",
]

#: The losses ``task=`` names (see the module docstring): cross-entropy, mean squared error,
#: next-token cross-entropy.
TASKS = ("classification", "regression", "causal_lm")
#: A label that counts in no loss (padding; Hugging Face's and torch's convention).
IGNORE_INDEX = -100

LossFn = Callable[[Any, Any], torch.Tensor]


def check_task(task: Any) -> str | None:
    """``task`` when it is None or one of :data:`TASKS`, else a ConfigError."""
    if task is not None and task not in TASKS:
        raise ConfigError(f"task must be None or one of {TASKS}, got {task!r}")
    return task


def lm_targets(inputs: Any, targets: Any) -> Any:
    """A causal LM's labels: ``targets``, or the input ids with padding set to -100."""
    if targets is not None or not isinstance(inputs, Mapping) or "input_ids" not in inputs:
        return targets
    labels = inputs["input_ids"].clone()
    mask = inputs.get("attention_mask")
    if mask is not None:
        labels[mask == 0] = IGNORE_INDEX
    return labels


def infer_task(model: Any, logits: torch.Tensor, targets: Any, declared: str | None) -> str:
    """The task (see the module docstring)."""
    if declared is not None:
        return check_task(declared)
    if isinstance(targets, torch.Tensor) and targets.is_floating_point():
        return "regression"
    if logits.ndim == 3 and is_causal_lm(model):
        return "causal_lm"
    return "classification"


def check_labels(labels: torch.Tensor, classes: int, what: str) -> None:
    """ConfigError unless ``labels`` are integer classes of ``0..classes-1`` (or -100)."""
    if labels.is_floating_point():
        raise ConfigError(
            f"{what} needs integer class labels, got {str(labels.dtype).removeprefix('torch.')} "
            "targets: pass integer labels (e.g. y.long()), or task='regression' with a model "
            "that outputs one value per target"
        )
    bad = ((labels < 0) | (labels >= classes)) & (labels != IGNORE_INDEX)
    if bool(bad.any()):
        counted = labels[labels != IGNORE_INDEX]
        raise ConfigError(
            f"labels range over {int(counted.min())}..{int(counted.max())} but the model has "
            f"{classes} outputs, so labels must lie in 0..{classes - 1} (or be {IGNORE_INDEX} "
            f"to ignore); {int(bad.sum())} labels do not: check that the data's classes and "
            "the model's outputs match"
        )


def check_targets(task: str, logits: torch.Tensor, targets: Any) -> None:
    """Raises ShapeError / ConfigError unless ``targets`` fit ``logits`` for ``task``."""
    if targets is None:
        raise ConfigError(
            f"the batch has no targets for the {task} loss: give batches (inputs, targets) or "
            "dicts with 'labels', or pass loss_fn=lambda outputs, batch: ..."
        )
    if not isinstance(targets, torch.Tensor):
        raise ShapeError(f"targets must be a tensor, got {describe(targets)}")
    if task == "regression":
        shape = tuple(targets.shape)
        if tuple(logits.shape) != shape and tuple(logits.shape) != (*shape, 1):
            hint = (
                f"; float targets are read as regression targets, but the model gives "
                f"{logits.shape[-1]} values per example: for classification pass integer class "
                "labels (e.g. y.long()) or task='classification'"
                if logits.ndim == targets.ndim + 1 and logits.shape[-1] > 1
                else ""
            )
            raise ShapeError(
                f"regression outputs must have the targets' shape {shape} (or {(*shape, 1)}); "
                f"the model returned {describe(logits)}{hint}"
            )
        return
    expected = tuple(targets.shape)
    if task == "causal_lm" and (logits.ndim != 3 or targets.ndim != 2):
        raise ShapeError(
            f"a causal LM's loss needs logits (batch, seq, vocab) and labels (batch, seq); got "
            f"{describe(logits)} and {describe(targets)}"
        )
    if tuple(logits.shape[:-1]) != expected:
        raise ShapeError(
            f"classification needs logits of shape (batch, classes) (or (batch, seq, classes)) "
            f"for labels {expected}: ({', '.join(map(str, expected))}, C); the model returned "
            f"{describe(logits)}"
        )
    check_labels(targets, logits.shape[-1], "classification" if task != "causal_lm" else task)


def next_token_loss(
    logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy of the logits at t against the labels at t + 1 (``-100`` ignored)."""
    shifted = logits[:, :-1, :]  # (B, T-1, V)
    return F.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]).float(),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )


def task_loss(task: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The default loss of ``task`` (see the module docstring)."""
    if task == "regression":
        if logits.shape != targets.shape:
            logits = logits.reshape(targets.shape)
        return F.mse_loss(logits.float(), targets.float())
    if task == "causal_lm":
        return next_token_loss(logits, targets)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(teacher || student) of temperature-softened distributions, times ``temperature**2``
    (Hinton et al.: keeps gradient sizes independent of the temperature).

    Args:
        student, teacher: logits ``(..., C)`` of the same shape.
        mask: optional boolean ``(...)``: positions that count (token models: not padding).
    """
    if student.shape != teacher.shape:
        raise ShapeError(
            f"distillation needs student and teacher logits of one shape; got "
            f"{describe(student)} and {describe(teacher)}"
        )
    t = float(temperature)
    log_p = F.log_softmax(student.float() / t, dim=-1)
    log_q = F.log_softmax(teacher.float() / t, dim=-1)
    kl = (log_q.exp() * (log_q - log_p)).sum(-1)  # (...)
    if mask is not None:
        kl = kl[mask]
    return kl.mean() * (t * t)
