"""Quality objectives: accuracy, top-k accuracy, perplexity, MSE, F1 and any metric, measured
on data of any form (see :func:`nasviz.data.as_batches`), on a model or on one subnet of a
supernet, on any device. Re-exported by :mod:`nasviz.objectives`.

Each is built from its data once (the form is checked then; nothing is read) and measures with
:func:`nasviz.training.evaluate`: one pass over the data in constant memory, in eval mode (the
model's mode restored), without gradients. A nasviz Dataset is measured on its ``val`` split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nasviz.data._batches import as_batches
from nasviz.errors import check_int
from nasviz.objectives import Objective
from nasviz.training._metrics import (
    F1,
    Accuracy,
    CustomMetric,
    MeanSquaredError,
    Metric,
    Perplexity,
    evaluate,
)

__all__ = ["accuracy", "evaluate_accuracy", "f1", "metric", "mse", "perplexity", "top_k_accuracy"]


def _objective(
    metric: Metric,
    data: Any,
    *,
    batch_size: int | None = None,
    device: Any = None,
    precision: str = "fp32",
    batch_fn: Any = None,
    task: str | None = None,
    split: str = "val",
) -> Objective:
    """An Objective that evaluates ``metric`` on ``data`` (checked now, read when called)."""
    what = f"{metric.name} data"
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    batches = as_batches(data, batch_size=batch_size, split=split, what=what)  # checked now
    metric.check_task(task or batches.task)  # a regression dataset has no accuracy

    def fn(model: Any, arch: Any) -> float:
        values = evaluate(
            model,
            data,
            [metric],
            arch=arch,
            device=device,
            precision=precision,
            batch_size=batch_size,
            batch_fn=batch_fn,
            task=task,
            split=split,
            what=what,
        )
        return values[metric.name]

    return Objective(metric.name, metric.direction, fn, unit=metric.unit, needs_model=True)


def accuracy(data: Any, batch_size: int | None = None, **options: Any) -> Objective:
    """Top-1 accuracy in percent (maximize) on ``data``.

    Args:
        data: any form :func:`~nasviz.data.as_batches` takes (a Dataset: its ``split``).
        batch_size: for data nasviz batches itself (default 512).
        **options: keyword-only, shared by every quality objective: ``device`` (None measures
            where the model is; a device moves the model there once), ``precision``
            ("fp32", "bf16", "fp16": autocast), ``batch_fn`` (``batch_fn(model, batch) ->
            (outputs, targets)`` for other batch forms), ``task`` (see
            :func:`nasviz.training.infer_task`; token models are scored token by token, causal
            LMs on their next-token predictions), ``split`` (of a nasviz Dataset: "val").
    """
    return _objective(Accuracy(), data, batch_size=batch_size, **options)


def top_k_accuracy(data: Any, k: int, **options: Any) -> Objective:
    """Percent of examples whose label is among the ``k`` highest logits (maximize), named
    ``top{k}_accuracy``; ``batch_size`` and the options as :func:`accuracy`."""
    return _objective(Accuracy(k), data, **options)


def perplexity(data: Any, **options: Any) -> Objective:
    """``exp`` of the mean negative log-likelihood per token (minimize): a causal LM's
    next-token perplexity (labels ``-100`` and padding ignored), per example for classifiers;
    ``batch_size`` and the options as :func:`accuracy`."""
    return _objective(Perplexity(), data, **options)


def mse(data: Any, **options: Any) -> Objective:
    """Mean squared error over every target value (minimize); ``batch_size`` and the options
    as :func:`accuracy`."""
    return _objective(MeanSquaredError(), data, task="regression", **options)


def f1(data: Any, *, average: str = "macro", **options: Any) -> Objective:
    """F1 score in percent (maximize): ``average="macro"`` (mean over the classes present, as
    scikit-learn's) or ``"micro"``; ``batch_size`` and the options as :func:`accuracy`."""
    return _objective(F1(average), data, **options)


def metric(
    fn: Callable[[Any, Any], Any],
    data: Any,
    name: str,
    direction: str,
    *,
    unit: str = "",
    **options: Any,
) -> Objective:
    """Any measurement: ``fn(outputs, targets) -> number`` per batch, averaged over the data
    weighted by the examples of each batch.

    Args:
        fn: gets the model's raw outputs (a tensor, or a Hugging Face output object) and the
            batch's targets (None when it has none).
        name, direction: the objective's column name and ``"minimize"`` / ``"maximize"``.
        unit: for axis labels.
        **options: ``batch_size`` and the options of :func:`accuracy`.
    """
    Objective(name, direction)  # checks name and direction now
    return _objective(CustomMetric(fn, name, direction, unit), data, **options)


def evaluate_accuracy(
    model: Any,
    data: Any,
    arch: Any = None,
    batch_size: int | None = None,
    *,
    device: Any = None,
) -> float:
    """Top-1 accuracy in percent of ``model`` (or of subnet ``arch``) on ``data`` (any form;
    a Dataset: its val split), in batches of ``batch_size`` (default 512) where nasviz batches.

    Raises:
        ShapeError: the inputs do not fit the model, or its outputs are not one row of class
            scores per label.
        ConfigError: a label is not one of the model's classes (``0..outputs-1``).
    """
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    values = evaluate(
        model,
        data,
        [Accuracy()],
        arch=arch,
        device=device,
        batch_size=batch_size,
        what="accuracy data",
    )
    return values["accuracy"]
