"""The one training layer: the loop, devices, precision, checkpoints, losses, metrics and
distillation. Every feature that trains or evaluates calls it instead of growing its own loop.

* :func:`train` — a background run (:class:`TrainingRun`) that trains any model on data in any
  form (see :func:`nasviz.data.as_batches`) with device placement, autocast (bf16 / fp16 with a
  GradScaler), gradient accumulation and clipping, a warm-up + cosine schedule, atomic
  checkpoints and exact resume in the middle of an epoch.
* :class:`Trainer` and :class:`Step` — the engine and the part features plug in (supernet
  training plugs in its sandwich step, :func:`recover` a distillation step).
* :func:`evaluate` and :class:`Metric` s — one evaluation pass for every objective.
* :func:`recover` — distillation from a teacher (logits, optionally hidden states) to recover
  the accuracy a compressed model lost.
"""

from __future__ import annotations

from nasviz.training._checkpoint import (
    checkpoint_exists,
    load_checkpoint,
    previous_path,
    save_checkpoint,
)
from nasviz.training._device import (
    PRECISIONS,
    Precision,
    available_devices,
    model_device,
    resolve_device,
    resolve_precision,
)
from nasviz.training._loop import TRAINING_FORMAT, Trainer
from nasviz.training._losses import (
    IGNORE_INDEX,
    TASKS,
    check_targets,
    distillation_loss,
    infer_task,
    next_token_loss,
    task_loss,
)
from nasviz.training._metrics import (
    F1,
    Accuracy,
    CustomMetric,
    MeanSquaredError,
    Metric,
    Perplexity,
    default_metrics,
    evaluate,
)
from nasviz.training._recover import DistillStep, recover
from nasviz.training._run import TrainingRun, train
from nasviz.training._schedule import OPTIMIZERS, SCHEDULES, lr_factor, make_optimizer
from nasviz.training._step import Step, SupervisedStep

__all__ = [
    "F1",
    "IGNORE_INDEX",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "TASKS",
    "TRAINING_FORMAT",
    "Accuracy",
    "CustomMetric",
    "DistillStep",
    "MeanSquaredError",
    "Metric",
    "Perplexity",
    "Precision",
    "Step",
    "SupervisedStep",
    "Trainer",
    "TrainingRun",
    "available_devices",
    "check_targets",
    "checkpoint_exists",
    "default_metrics",
    "distillation_loss",
    "evaluate",
    "infer_task",
    "load_checkpoint",
    "lr_factor",
    "make_optimizer",
    "model_device",
    "next_token_loss",
    "previous_path",
    "recover",
    "resolve_device",
    "resolve_precision",
    "save_checkpoint",
    "task_loss",
    "train",
]
