"""Metrics summed over batches, and :func:`evaluate`, the one evaluation pass.

A :class:`Metric` adds up what it needs batch by batch (correct predictions, token
log-likelihoods, squared errors, confusion counts) and computes its value at the end, so data
of any size streams through in constant memory. Built-ins follow the task's conventions (see
:mod:`nasviz.training._losses`): a causal LM's token metrics compare the logits at t with the
label at t + 1, and labels ``-100`` never count.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from nasviz.data._batch import BatchFn, batch_len, default_batch_fn, logits_of, move, split_batch
from nasviz.data._batches import as_batches
from nasviz.errors import ConfigError, check_int
from nasviz.training._device import resolve_device, resolve_precision
from nasviz.training._losses import IGNORE_INDEX, check_targets, infer_task, lm_targets
from nasviz.training._model import active_subnet, as_module, eval_mode

__all__ = [
    "F1",
    "Accuracy",
    "CustomMetric",
    "MeanSquaredError",
    "Metric",
    "Perplexity",
    "default_metrics",
    "evaluate",
]

EVAL_BATCH_SIZE = 512


class Metric(ABC):
    """A value computed from every batch of the data.

    Contract: :func:`evaluate` works on a fresh copy per call (``reset`` then ``update`` per
    batch, then ``value``), so one Metric may serve several threads' evaluations at once.
    """

    name: str = "metric"
    direction: str = "maximize"
    unit: str = ""
    needs_targets: bool = True
    #: the tasks (of :data:`~nasviz.training.TASKS`) it can score; None: any
    tasks: tuple[str, ...] | None = None

    @abstractmethod
    def reset(self) -> None:
        """Forgets every batch."""

    def check_task(self, task: str | None) -> None:
        """ConfigError when ``task`` is known and this metric cannot score it."""
        if task is not None and self.tasks is not None and task not in self.tasks:
            hint = "mse(data)" if task == "regression" else "accuracy(data) or perplexity(data)"
            raise ConfigError(
                f"{self.name} scores {' or '.join(self.tasks)} outputs; this is a {task} task "
                f"(measure it with {hint}, or metric(fn, data, name, direction))"
            )

    @abstractmethod
    def update(self, outputs: Any, targets: Any, task: str) -> None:
        """Adds one batch's outputs and targets (already checked against each other)."""

    @abstractmethod
    def value(self) -> float:
        """The value over every batch added (ConfigError when nothing counted)."""


def _pairs(logits: torch.Tensor, targets: torch.Tensor, task: str):
    """Flattened (logits (N, C), labels (N,)) that count: shifted for causal LMs, -100 out."""
    if task == "causal_lm":
        logits, targets = logits[:, :-1, :], targets[:, 1:]
    logits = logits.reshape(-1, logits.shape[-1])
    targets = targets.reshape(-1)
    keep = targets != IGNORE_INDEX
    return logits[keep], targets[keep]


def _empty(name: str) -> ConfigError:
    return ConfigError(f"{name} data is empty: no example (or no label other than -100) counted")


class Accuracy(Metric):
    """Top-``k`` accuracy in percent (k=1: the usual accuracy)."""

    direction, unit = "maximize", "%"
    tasks = ("classification", "causal_lm")

    def __init__(self, k: int = 1):
        self.k = check_int("k", k, 1)
        self.name = "accuracy" if k == 1 else f"top{k}_accuracy"
        self.reset()

    def reset(self) -> None:
        self.correct = self.total = 0

    def update(self, outputs: Any, targets: Any, task: str) -> None:
        logits, labels = _pairs(logits_of(outputs), targets, task)
        if self.k > logits.shape[-1]:
            raise ConfigError(
                f"top-{self.k} accuracy needs >= {self.k} classes, the model has {logits.shape[-1]}"
            )
        if self.k == 1:
            hits = logits.argmax(-1) == labels
        else:
            hits = (logits.topk(self.k, dim=-1).indices == labels[:, None]).any(-1)
        self.correct += int(hits.sum())
        self.total += len(labels)

    def value(self) -> float:
        if self.total == 0:
            raise _empty(self.name)
        return 100.0 * self.correct / self.total


class Perplexity(Metric):
    """``exp`` of the mean negative log-likelihood per token (per example for classifiers)."""

    name, direction = "perplexity", "minimize"
    tasks = ("classification", "causal_lm")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.nll = 0.0
        self.count = 0

    def update(self, outputs: Any, targets: Any, task: str) -> None:
        logits, labels = _pairs(logits_of(outputs), targets, task)
        self.nll += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        self.count += len(labels)

    def value(self) -> float:
        if self.count == 0:
            raise _empty(self.name)
        return math.exp(self.nll / self.count)


class MeanSquaredError(Metric):
    """Mean squared error over every target value."""

    name, direction = "mse", "minimize"
    tasks = ("regression",)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sum = 0.0
        self.count = 0

    def update(self, outputs: Any, targets: Any, task: str) -> None:
        predicted = logits_of(outputs).float().reshape(targets.shape)
        self.sum += float(((predicted - targets.float()) ** 2).sum())
        self.count += targets.numel()

    def value(self) -> float:
        if self.count == 0:
            raise _empty(self.name)
        return self.sum / self.count


class F1(Metric):
    """F1 score in percent: ``"macro"`` (the mean over the classes that occur in the labels or
    the predictions, as scikit-learn's) or ``"micro"`` (equal to accuracy for one label per
    example)."""

    direction, unit = "maximize", "%"
    tasks = ("classification", "causal_lm")

    def __init__(self, average: str = "macro"):
        if average not in ("macro", "micro"):
            raise ConfigError(f"average must be 'macro' or 'micro', got {average!r}")
        self.average = average
        self.name = "f1" if average == "macro" else "f1_micro"
        self.reset()

    def reset(self) -> None:
        self.tp = self.fp = self.fn = None

    def update(self, outputs: Any, targets: Any, task: str) -> None:
        logits, labels = _pairs(logits_of(outputs), targets, task)
        classes = logits.shape[-1]
        predicted = logits.argmax(-1)
        counts = [
            torch.bincount(x, minlength=classes).cpu()
            for x in (
                predicted[predicted == labels],
                predicted[predicted != labels],
                labels[predicted != labels],
            )
        ]
        if self.tp is None:
            self.tp, self.fp, self.fn = counts
        else:
            self.tp, self.fp, self.fn = (
                a + b for a, b in zip((self.tp, self.fp, self.fn), counts, strict=True)
            )

    def value(self) -> float:
        if self.tp is None or int(self.tp.sum() + self.fn.sum()) == 0:
            raise _empty(self.name)
        tp, fp, fn = (x.double() for x in (self.tp, self.fp, self.fn))
        if self.average == "micro":
            return float(100.0 * 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()))
        present = (tp + fp + fn) > 0
        f1 = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
        return float(100.0 * f1.mean())


class CustomMetric(Metric):
    """``fn(outputs, targets) -> number`` per batch, averaged weighted by examples per batch."""

    def __init__(self, fn: Callable[[Any, Any], Any], name: str, direction: str, unit: str = ""):
        if not callable(fn):
            raise ConfigError(f"a metric's fn must be callable, got {type(fn).__name__}")
        self.fn, self.name, self.direction, self.unit = fn, name, direction, unit
        self.needs_targets = False
        self.reset()

    def reset(self) -> None:
        self.sum = 0.0
        self.count = 0

    def update(self, outputs: Any, targets: Any, task: str) -> None:
        n = batch_len(targets) if targets is not None else batch_len(logits_of(outputs))
        self.sum += float(self.fn(outputs, targets)) * n
        self.count += n

    def value(self) -> float:
        if self.count == 0:
            raise _empty(self.name)
        return self.sum / self.count


def default_metrics(task: str | None) -> list[Metric]:
    """What a task is measured with by default: accuracy, mse or perplexity."""
    if task == "regression":
        return [MeanSquaredError()]
    if task == "causal_lm":
        return [Perplexity()]
    return [Accuracy()]


@torch.no_grad()
def evaluate(
    model: Any,
    data: Any,
    metrics: Sequence[Metric],
    *,
    arch: Any = None,
    device: Any = None,
    precision: str = "fp32",
    batch_size: int | None = None,
    batch_fn: BatchFn | None = None,
    task: str | None = None,
    split: str = "val",
    what: str = "data",
) -> dict[str, float]:
    """Every metric of ``model`` (or of subnet ``arch`` of a supernet) over ``data``.

    Args:
        model: a torch module; it is put in eval mode for the pass and its mode restored.
        data: any form :func:`~nasviz.data.as_batches` takes (a nasviz Dataset: ``split``).
        device: None evaluates where the model is; a device moves the model there (once: it
            stays there) and every batch with it.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast).
        batch_size: for data nasviz batches itself (default 512).
        batch_fn: ``batch_fn(model, batch) -> (outputs, targets)`` for batches of other forms.
        task: see :func:`~nasviz.training.infer_task` (default: inferred).

    Returns:
        metric name -> value.

    Raises:
        ShapeError: a batch the model cannot take, or outputs that do not fit the targets.
        ConfigError: labels outside the model's classes, empty data.
    """
    module = as_module(model)
    batches = as_batches(
        data, batch_size=batch_size, split=split, what=what, default_batch_size=EVAL_BATCH_SIZE
    )
    device = resolve_device(device, module)
    amp = resolve_precision(precision, device)
    if device != resolve_device(None, module):
        module.to(device)
    batch_fn = default_batch_fn if batch_fn is None else batch_fn
    tallies = [copy.deepcopy(m) for m in metrics]
    for tally in tallies:
        tally.reset()
    task = task if task is not None else batches.task
    restore = eval_mode(module)
    try:
        with active_subnet(model, arch):
            for batch in batches:
                batch = move(batch, device, non_blocking=batches.pin_memory)
                with amp.autocast():
                    outputs, targets = batch_fn(module, batch)
                logits = logits_of(outputs)
                inputs = split_batch(batch)[0] if batch_fn is default_batch_fn else None
                kind = infer_task(module, logits, targets, task)
                for tally in tallies:
                    tally.check_task(kind)
                if kind == "causal_lm":
                    targets = lm_targets(inputs, targets)
                if any(t.needs_targets for t in tallies):
                    check_targets(kind, logits, targets)
                for tally in tallies:
                    tally.update(outputs, targets, kind)
    finally:
        restore()
    return {t.name: t.value() for t in tallies}
