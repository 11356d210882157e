"""``train(model, data, ...)``: the training loop as a background run."""

from __future__ import annotations

from typing import Any

import pandas as pd
from torch import nn

from nasviz.errors import check_options
from nasviz.runner import Run
from nasviz.training._loop import Trainer

__all__ = ["TrainingRun", "train"]


class TrainingRun(Run):
    """A background training run (a :class:`~nasviz.Run` with the ``model`` and its
    ``history`` at hand); :class:`~nasviz.ui.TrainingMonitor` draws its losses live."""

    engine: Trainer

    @property
    def model(self) -> nn.Module:
        """The model being trained (the caller's own object, trained in place)."""
        return self.engine.model

    @property
    def history(self) -> pd.DataFrame:
        """Loss per step and name so far: step, epoch, member, loss, lr."""
        return self.engine.history()

    @property
    def evaluations(self) -> pd.DataFrame:
        """Validation metrics per evaluated epoch (``val_<metric>`` columns)."""
        return self.engine.evaluations()


def train(model: nn.Module, data: Any, **options: Any) -> TrainingRun:
    """A background run that trains ``model`` in place on ``data``; ``start()`` returns at
    once, ``run()`` blocks. Everything is checked here, before anything changes.

    Args:
        model: any torch module (a Hugging Face model too).
        data: any form :func:`~nasviz.data.as_batches` takes: a DataLoader, a Dataset or Split
            (its train split), arrays, a DataFrame (with ``target=`` via ``as_batches``), a
            Hugging Face dataset, a re-iterable of tuple or dict batches; streams are read as
            they come and never held whole.
        **options: keyword-only:

            * ``steps`` or ``epochs`` (default 1 epoch; a stream of unknown length needs
              ``steps``); ``batch_size`` (for data nasviz batches: 64), ``shuffle`` (None: data
              in memory shuffled, a DataLoader's own choice kept), ``seed``.
            * ``lr`` (1e-3, the peak), ``optimizer`` ("adamw", "adam", "sgd" or
              ``make(params, lr)``), ``weight_decay`` (0.01), ``schedule`` ("cosine",
              "linear", "constant" or ``factor(step, total)``), ``warmup`` (0.05 of the steps),
              ``accumulate`` (micro-batches per update), ``clip`` (max gradient norm).
            * ``device`` (None: where the model is; "auto", "cpu", "cuda", "cuda:N", "mps"),
              ``precision`` ("fp32", "bf16", "fp16").
            * ``task`` ("classification", "regression", "causal_lm"; inferred),
              ``loss_fn(outputs, batch)``, ``batch_fn(model, batch) -> (outputs, targets)``.
            * ``val`` (validation data) and ``metrics`` (:class:`~nasviz.training.Metric` s;
              default by task), ``eval_every`` (epochs).
            * ``checkpoint`` (a path: resumed from when it exists), ``checkpoint_every``
              (steps; default: every epoch), always also on stop and at the end.

    Events: ``"loss"`` after every update with ``{"step", "epoch", "lr", "losses"}``,
    ``"eval"`` after evaluated epochs, ``"checkpoint"``, and the run's ``"status"``.

    Raises:
        ConfigError, ShapeError: bad arguments, a batch the model cannot take, labels the model
            cannot predict, an unavailable device, empty data (the model is left as it was).
        CheckpointError: a checkpoint of other settings or another model.
    """
    check_options("train", options, [Trainer], internal=("model", "data", "settings"))
    return TrainingRun(Trainer(model, data, **options), name=f"train {type(model).__name__}")
