"""Supernet training: the sandwich rule with in-place distillation, on the training loop.

Every step takes one minibatch and trains the largest subnet on the labels, then the smallest
and ``n_random`` random subnets on a mix of the labels and the largest's soft outputs (in-place
distillation); the gradients add up and one optimizer step follows (see ``_sandwich.py``).
Options:

* ``shrinking="progressive"`` (Once-for-All): dimension groups open one after another in the
  net's ``shrink_order`` (for ElasticCNN: kernel, then depth, then expand); closed groups stay
  at their largest value.
* ``delay`` (DεpS): train only the largest for that fraction of the steps, then open the small
  subnets, raising their loss weight linearly from 0 to 1 over ``ramp`` of the steps (their
  effective learning rate grows incrementally).
* ``teacher``: a separate model whose soft outputs the largest also learns from, or
  ``"original"``: a frozen copy of the largest subnet as it is when training starts (InstaTune:
  a converted pre-trained model fine-tuned elastically keeps learning from the model it was).
  The copy is saved in checkpoints, so a resumed run distils from the same original.

Channels are sorted by importance (``net.reorder_channels``, with the optimizer's moments
permuted alongside) once, right before the first width dimension opens after the largest has
trained alone, as Once-for-All does (see :meth:`SupernetTrainer.reorders_at`); a ``"reorder"``
event marks the step.

Data, device, precision, schedule, accumulation and checkpoints are the training loop's
(:class:`nasviz.training.Trainer`): data in any form, ``device=``, ``precision=``, atomic
checkpoints (every epoch and on stop) and exact resume in the middle of an epoch. The run is
deterministic for a seed: batch order depends on (seed, epoch), sampled subnets on
(seed, step). ``stop()`` keeps everything in memory (and writes ``checkpoint`` when given), so
``start()`` continues at the next step; a new ``train_supernet`` with an existing
``checkpoint`` resumes from it (checkpoints of the previous format too).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from nasviz.errors import ConfigError, check_int, check_options, check_real
from nasviz.runner import Event
from nasviz.space import Arch
from nasviz.supernet._base import Supernet
from nasviz.supernet._recalibrate import calibration_inputs
from nasviz.supernet._sandwich import SandwichStep
from nasviz.training import Trainer
from nasviz.training import TrainingRun as _TrainingRun
from nasviz.training._metrics import default_metrics, evaluate

__all__ = ["SupernetTrainer", "TrainingRun", "train_supernet"]

TRAINING_FORMAT = "nasviz.supernet-training/2"
LEGACY_FORMAT = "nasviz.supernet-training/1"  # written before the training loop: still read
SHRINKING = ("sandwich", "progressive")


def _fraction(name: str, value: Any, high: float) -> float:
    value = check_real(name, value)
    if not 0.0 <= value <= high:
        raise ConfigError(f"{name} must be in [0, {high}], got {value}")
    return value


class SupernetTrainer(Trainer):
    """The training engine (one step = one sandwich update on one minibatch).

    Contract: driven by one :class:`~nasviz.runner.Run` thread; ``progress`` and ``history``
    may be read from any thread. Nothing else may use ``net`` while a step runs.
    """

    formats = (TRAINING_FORMAT, LEGACY_FORMAT)

    def __init__(
        self,
        net: Supernet,
        data: Any,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        weight_decay: float = 1e-4,
        n_random: int = 2,
        distill: float = 0.5,
        shrinking: str = "sandwich",
        delay: float = 0.0,
        ramp: float = 0.0,
        aux_weight: float = 0.01,
        seed: int = 0,
        eval_every: int = 1,
        calibration_samples: int = 1000,
        checkpoint: str | Path | None = None,
        *,
        steps: int | None = None,
        val: Any = None,
        teacher: nn.Module | str | None = None,
        device: Any = None,
        precision: str = "fp32",
        accumulate: int = 1,
        clip: float | None = None,
        shuffle: bool | None = None,
        checkpoint_every: int | None = None,
        task: str | None = None,
    ):
        if not isinstance(net, Supernet):
            raise ConfigError(f"train_supernet needs a nasviz Supernet, got {type(net).__name__}")
        original = isinstance(teacher, str) and teacher == "original"
        if (
            teacher is not None
            and not original
            and (not isinstance(teacher, nn.Module) or teacher is net)
        ):
            raise ConfigError(
                "teacher must be a separate torch model (not the supernet itself) or "
                f"'original' (a frozen copy of the largest subnet as it is now), got {teacher!r}"
            )
        if shrinking not in SHRINKING:
            raise ConfigError(f"shrinking must be one of {SHRINKING}, got {shrinking!r}")
        delay = _fraction("delay", delay, 0.999)
        ramp = _fraction("ramp", ramp, 1.0)
        distill = _fraction("distill", distill, 1.0)
        aux_weight = check_real("aux_weight", aux_weight)
        n_random = check_int("n_random", n_random, 0)
        self.calibration_samples = check_int("calibration_samples", calibration_samples, 1)
        if steps is None:
            epochs = net.default_epochs if epochs is None else epochs
        lr = net.default_lr if lr is None else lr
        self.net = net
        if original:
            teacher = frozen_original(net)
        if val is None and all(hasattr(data, a) for a in ("train", "val", "num_classes")):
            val = data.val
        super().__init__(
            net,
            data,
            steps=steps,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            lr=lr,
            weight_decay=weight_decay,
            schedule="cosine",
            warmup=0.0,
            accumulate=accumulate,
            clip=clip,
            precision=precision,
            device=device,
            task=task,
            val=val,
            eval_every=eval_every,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            step=SandwichStep(teacher, owned=original),
            settings={
                "n_random": n_random,
                "distill": distill,
                "shrinking": shrinking,
                "delay": delay,
                "ramp": ramp,
                "aux_weight": aux_weight,
                "teacher": "original" if original else teacher is not None,
            },
        )

    @property
    def steps_per_epoch(self) -> int | None:
        """Batches per epoch (None for a stream of unknown length)."""
        return self.length

    # ---- engine ------------------------------------------------------------------------------
    def setup(self) -> None:
        batches = self.batches.replace(shuffle=False, pin_memory=False)
        self.net.calibration_inputs = calibration_inputs(batches, self.calibration_samples)
        super().setup()

    def teardown(self, reason: str) -> None:
        self._training_mode = False  # handed back in eval mode, ready for evaluation
        super().teardown(reason)

    def before_update(self, step: int) -> list[Event]:
        if self.reorders_at(step):  # the optimizer's moments move with the weights
            self.net.reorder_channels(self.optimizer.state)
            return [Event("reorder", {"step": step})]
        return []

    def after_update(self, step: int) -> None:
        self.net.clear_calibration()

    def evaluate_epoch(self, epoch: int) -> dict[str, Any] | None:
        if self.val is None:
            return None
        row: dict[str, Any] = {"epoch": epoch + 1, "step": self.step_index}
        metric = default_metrics(self.task)
        for name, arch in (("largest", self.net.largest()), ("smallest", self.net.smallest())):
            values = evaluate(
                self.net, self.val, metric, arch=arch, task=self.task, what="validation data"
            )
            row[f"val_{name}"] = next(iter(values.values()))
        self.net.clear_calibration()
        return row

    def evaluations(self) -> pd.DataFrame:
        """One row per evaluated epoch: validation accuracy (%) of the largest and smallest."""
        frame = super().evaluations()
        return frame.reindex(columns=["epoch", "step", "val_largest", "val_smallest"])

    # ---- sandwich members ----------------------------------------------------------------
    def _small_weight(self, step: int) -> float:
        """Loss weight of the step's small subnets (0: only the largest trains)."""
        s = self.settings
        t = step / self.total
        if t < s["delay"]:
            return 0.0
        return 1.0 if s["ramp"] == 0 else max(0.0, min(1.0, (t - s["delay"]) / s["ramp"]))

    def opened(self, step: int) -> frozenset[str]:
        """The dimension groups the step's small subnets may vary (empty: only the largest
        trains). Progressive shrinking opens the net's ``shrink_order`` one group at a time."""
        s = self.settings
        if self._small_weight(step) <= 0:
            return frozenset()
        groups = self.net.shrink_order
        if s["shrinking"] != "progressive" or not groups:
            return frozenset(name.split(".")[0] for name in self.net.space.names)
        since = (step / self.total - s["delay"]) / (1.0 - s["delay"])  # 0..1 of shrinking
        return frozenset(groups[: 1 + min(int(since * len(groups)), len(groups) - 1)])

    def reorders_at(self, step: int) -> bool:
        """Whether channels are sorted by importance before ``step``: right before the first
        width group (``net.width_groups``) opens, once the largest has trained alone (OFA
        sorts before opening width). Channels no small subnet has used yet are moved, so no
        subnet's function changes. A run that opens everything from step 0 never sorts: there
        the smallest subnet trains the first channels from the start."""
        widths = set(self.net.width_groups)
        return step > 0 and bool(widths & self.opened(step)) and not widths & self.opened(step - 1)

    def members(self, step: int) -> list[tuple[str, Arch, float]]:
        """``(name, arch, loss weight)`` of the subnets trained at ``step``: the largest first."""
        s, space = self.settings, self.net.space
        largest = space.largest()
        opened = self.opened(step)
        if not opened:
            return [("largest", largest, 1.0)]

        def restrict(arch: Arch) -> Arch:
            return Arch(
                (k, v if k.split(".")[0] in opened else largest[k]) for k, v in arch.items()
            )

        weight = self._small_weight(step)
        rng = np.random.default_rng([s["seed"], step])
        out = [("largest", largest, 1.0), ("smallest", restrict(space.smallest()), weight)]
        out += [
            (f"random{i + 1}", restrict(space.sample(rng)), weight) for i in range(s["n_random"])
        ]
        return out

    # ---- checkpoints -------------------------------------------------------------------------
    def model_blob(self) -> Any:
        from nasviz.supernet._checkpoint import supernet_blob

        return supernet_blob(self.net)

    def restore_model(self, blob: Any, path: Path) -> None:
        from nasviz.supernet._checkpoint import restore_blob

        restore_blob(self.net, blob, path)

    def restore(self, blob: dict[str, Any], path: Path) -> None:
        if blob.get("format") == LEGACY_FORMAT:  # the same contents under older names
            blob = {**blob, "model": blob["supernet"], "modules": []}
        super().restore(blob, path)


def frozen_original(net: Supernet) -> nn.Module:
    """The largest subnet as a standalone model of its own tensors, in eval mode and frozen."""
    model = net.export(net.space.largest())
    shared = {t.data_ptr() for t in (*net.parameters(), *net.buffers())}
    if any(t.data_ptr() in shared for t in (*model.parameters(), *model.buffers())):
        model = copy.deepcopy(model)  # an export that shares storage would follow training
    return model.eval().requires_grad_(False)


class TrainingRun(_TrainingRun):
    """The background run of :func:`train_supernet` (a :class:`~nasviz.Run` with the trained
    ``net`` and its ``history`` at hand)."""

    engine: SupernetTrainer

    @property
    def net(self) -> Supernet:
        return self.engine.net


def train_supernet(
    net: Supernet, data: Any, epochs: int | None = None, **options: Any
) -> TrainingRun:
    """A background run that trains ``net`` on ``data``; call ``start()`` (returns at once) or
    ``run()`` (blocks). Everything is checked here, in the caller's thread, before the run
    starts; a refused call leaves the net as it was (weights, device and mode).

    Args:
        net: the supernet (trained in place).
        data: any form :func:`nasviz.data.as_batches` takes: a nasviz Dataset (trains on
            ``train``, reports accuracy on ``val``), a Split, ``(X, y)``, a DataLoader or torch
            Dataset, a Hugging Face dataset, a stream.
        epochs: passes over the training data (None: the family's ``default_epochs``, the
            default recipe: 30 for ElasticMLP, 10 for ElasticCNN, 20 for ElasticTransformer).
        **options: see :class:`SupernetTrainer`: ``batch_size`` (64 for data nasviz batches; a
            DataLoader's own), ``lr`` (None: the family's ``default_lr``, 3e-3, or 1e-2 for
            ElasticCNN; AdamW, cosine decay), ``weight_decay``, ``n_random`` (2 random subnets
            per step), ``distill`` (0.5: weight of the largest's soft targets for the other
            subnets), ``shrinking`` ("sandwich" or "progressive"), ``delay`` and ``ramp``
            (DεpS), ``aux_weight`` (MoE load balancing), ``seed``, ``eval_every``,
            ``calibration_samples`` (BN re-calibration inputs kept in the net),
            ``checkpoint`` (a path written atomically every epoch, on stop and at the end;
            resumed from when it exists), ``checkpoint_every`` (steps); keyword-only: ``steps``
            (instead of epochs; needed for streams of unknown length), ``val`` (validation
            data; a Dataset's val split by default), ``teacher`` (a separate model the largest
            also distils from, or ``"original"``: a frozen copy of the largest subnet as it is
            now, kept in checkpoints), ``device``, ``precision`` ("fp32", "bf16", "fp16"),
            ``accumulate``, ``clip``, ``shuffle``, ``task``.

    Events: ``"loss"`` after every step with ``{"step", "epoch", "lr", "losses": {member: loss}}``,
    ``"eval"`` after evaluated epochs with validation accuracies, ``"reorder"``,
    ``"checkpoint"`` and the run's ``"status"``.
    """
    check_options("train_supernet", options, [SupernetTrainer], internal=("net", "data"))
    return TrainingRun(SupernetTrainer(net, data, epochs, **options), name=f"train {net.family}")
