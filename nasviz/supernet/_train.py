"""Supernet training: the sandwich rule with in-place distillation, as a background run.

Every step takes one minibatch and trains the largest subnet on the labels, then the smallest
and ``n_random`` random subnets on a mix of the labels and the largest's soft outputs (in-place
distillation); the gradients add up and one optimizer step follows. Options:

* ``shrinking="progressive"`` (Once-for-All): dimension groups open one after another in the
  net's ``shrink_order`` (for ElasticCNN: kernel, then depth, then expand); closed groups stay
  at their largest value.
* ``delay`` (DεpS): train only the largest for that fraction of the steps, then open the small
  subnets, raising their loss weight linearly from 0 to 1 over ``ramp`` of the steps (their
  effective learning rate grows incrementally).

Channels are sorted by importance (``net.reorder_channels``, with the optimizer's moments
permuted alongside) once, right before the first width dimension opens after the largest has
trained alone, as Once-for-All does (see :meth:`SupernetTrainer.reorders_at`); a ``"reorder"``
event marks the step.

The run is deterministic for a seed: batch order depends on (seed, epoch), sampled subnets on
(seed, step). ``stop()`` keeps everything in memory (and writes ``checkpoint`` when given), so
``start()`` continues at the next step; a new ``train_supernet`` with an existing
``checkpoint`` resumes from it.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from nasviz.errors import CheckpointError, ConfigError
from nasviz.objectives import evaluate_accuracy
from nasviz.runner import Engine, Event, Progress, Run
from nasviz.space import Arch
from nasviz.supernet._base import Supernet
from nasviz.supernet._recalibrate import calibration_inputs

__all__ = ["SupernetTrainer", "TrainingRun", "train_supernet"]

TRAINING_FORMAT = "nasviz.supernet-training/1"
SHRINKING = ("sandwich", "progressive")


def _train_split(data: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
    if hasattr(data, "train") and hasattr(data, "val"):
        return data.train.X, data.train.y, data.val
    if hasattr(data, "X") and hasattr(data, "y"):
        return data.X, data.y, None
    if isinstance(data, tuple) and len(data) == 2:
        return torch.as_tensor(data[0]), torch.as_tensor(data[1]), None
    raise ConfigError(
        f"training data must be a nasviz Dataset or Split or an (X, y) pair; got {type(data).__name__}"
    )


class SupernetTrainer(Engine):
    """The training engine (one step = one sandwich update on one minibatch).

    Contract: driven by one :class:`~nasviz.runner.Run` thread; ``progress`` and ``history``
    may be read from any thread. Nothing else may use ``net`` while a step runs.
    """

    def __init__(
        self,
        net: Supernet,
        data: Any,
        epochs: int | None = None,
        batch_size: int = 64,
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
    ):
        if not isinstance(net, Supernet):
            raise ConfigError(f"train_supernet needs a nasviz Supernet, got {type(net).__name__}")
        epochs = net.default_epochs if epochs is None else epochs
        lr = net.default_lr if lr is None else lr
        if shrinking not in SHRINKING:
            raise ConfigError(f"shrinking must be one of {SHRINKING}, got {shrinking!r}")
        for name, value, low, high in (
            ("delay", delay, 0.0, 0.999),
            ("ramp", ramp, 0.0, 1.0),
            ("distill", distill, 0.0, 1.0),
        ):
            if not low <= value <= high:
                raise ConfigError(f"{name} must be in [{low}, {high}], got {value}")
        for name, value in (
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("eval_every", eval_every),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        if n_random < 0 or lr <= 0:
            raise ConfigError(f"need n_random >= 0 and lr > 0, got {n_random} and {lr}")
        self.net = net
        self.X, self.y, self.val = _train_split(data)
        if len(self.y) == 0:
            raise ConfigError("the training split is empty")
        with torch.no_grad(), net.subnet(net.largest()):  # fails early, naming the expected shape
            net.eval()(self.X[:2])
        self.settings = {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "n_random": n_random,
            "distill": distill,
            "shrinking": shrinking,
            "delay": delay,
            "ramp": ramp,
            "aux_weight": aux_weight,
            "seed": seed,
        }
        self.eval_every, self.calibration_samples = eval_every, calibration_samples
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.steps_per_epoch = math.ceil(len(self.y) / batch_size)
        self.total = epochs * self.steps_per_epoch
        self.step_index = 0
        self.optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        self._lock = threading.Lock()
        self._losses: list[dict[str, Any]] = []
        self._evals: list[dict[str, Any]] = []
        self._order: tuple[int, torch.Tensor] | None = None
        if self.checkpoint is not None and self.checkpoint.exists():
            self._restore(self.checkpoint)

    # ---- engine --------------------------------------------------------------------------
    def setup(self) -> None:
        self.net.calibration_inputs = calibration_inputs((self.X, self.y), self.calibration_samples)
        self.net.train()

    def finished(self) -> bool:
        return self.step_index >= self.total

    def progress(self) -> Progress:
        return Progress(self.step_index, self.total, unit="step")

    def step(self) -> Iterable[Event]:
        s = self.settings
        step = self.step_index
        epoch, b = divmod(step, self.steps_per_epoch)
        idx = self._epoch_order(epoch)[b * s["batch_size"] : (b + 1) * s["batch_size"]]
        x, y = self.X[idx], self.y[idx]  # (B, *input_shape), (B,)
        lr = s["lr"] * 0.5 * (1.0 + math.cos(math.pi * step / self.total))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        events = []
        if self.reorders_at(step):  # the optimizer's moments move with the weights
            self.net.reorder_channels(self.optimizer.state)
            events.append(Event("reorder", {"step": step}))
        self.optimizer.zero_grad(set_to_none=True)
        losses: dict[str, float] = {}
        teacher = None
        for name, arch, weight in self.members(step):
            with self.net.subnet(arch):
                logits = self.net(x)  # (B, C)
                loss = F.cross_entropy(logits, y)
                if teacher is not None and s["distill"] > 0:
                    soft = -(teacher * F.log_softmax(logits, -1)).sum(-1).mean()
                    loss = (1.0 - s["distill"]) * loss + s["distill"] * soft
                if hasattr(self.net, "aux_loss") and s["aux_weight"]:
                    loss = loss + s["aux_weight"] * self.net.aux_loss()
            if weight > 0:
                (weight * loss).backward()
            if name == "largest":
                teacher = logits.detach().softmax(-1)  # (B, C)
            losses[name] = loss.item()
        self.optimizer.step()
        self.net.clear_calibration()
        self.step_index += 1
        data = {"step": self.step_index, "epoch": epoch, "lr": lr, "losses": losses}
        with self._lock:
            self._losses += [
                {"step": self.step_index, "epoch": epoch, "member": k, "loss": v, "lr": lr}
                for k, v in losses.items()
            ]
        events.append(Event("loss", data))
        if (
            self.step_index % self.steps_per_epoch == 0
            and (epoch + 1) % self.eval_every == 0
            and self.val is not None
        ):
            events.append(Event("eval", self._evaluate(epoch)))
        return events

    def teardown(self, reason: str) -> None:
        self.net.eval()
        if self.checkpoint is not None and reason in ("stopped", "finished"):
            self.save(self.checkpoint)

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

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if self._order is None or self._order[0] != epoch:
            g = torch.Generator().manual_seed(self.settings["seed"] * 100_003 + epoch)
            self._order = (epoch, torch.randperm(len(self.y), generator=g))
        return self._order[1]

    def _evaluate(self, epoch: int) -> dict[str, Any]:
        row: dict[str, Any] = {"epoch": epoch + 1, "step": self.step_index}
        for name, arch in (("largest", self.net.largest()), ("smallest", self.net.smallest())):
            row[f"val_{name}"] = evaluate_accuracy(self.net, self.val, arch)
        self.net.clear_calibration()
        with self._lock:
            self._evals.append(row)
        return dict(row)

    # ---- results -------------------------------------------------------------------------
    def history(self) -> pd.DataFrame:
        """One row per (step, sandwich member): step, epoch, member, loss, lr."""
        with self._lock:
            return pd.DataFrame(self._losses, columns=["step", "epoch", "member", "loss", "lr"])

    def evaluations(self) -> pd.DataFrame:
        """One row per evaluated epoch: validation accuracy (%) of the largest and smallest."""
        with self._lock:
            return pd.DataFrame(
                self._evals, columns=["epoch", "step", "val_largest", "val_smallest"]
            )

    # ---- checkpoints ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes net, optimizer and position (tensors and JSON only)."""
        from nasviz.supernet._checkpoint import supernet_blob

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            history = json.dumps({"losses": self._losses, "evals": self._evals})
        torch.save(
            {
                "format": TRAINING_FORMAT,
                "supernet": supernet_blob(self.net),
                "optimizer": self.optimizer.state_dict(),
                "step": self.step_index,
                "settings": json.dumps(self.settings, sort_keys=True),
                "history": history,
            },
            path,
        )
        return path

    def _restore(self, path: Path) -> None:
        from nasviz.supernet._checkpoint import restore_blob

        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"{path} is not a training checkpoint readable with weights_only=True: {exc}"
            ) from exc
        if not isinstance(blob, dict) or blob.get("format") != TRAINING_FORMAT:
            raise CheckpointError(
                f"{path} is not a supernet training checkpoint (format {TRAINING_FORMAT!r})"
            )
        saved = json.loads(blob["settings"])
        diffs = [
            f"{k}={saved.get(k)!r} in the checkpoint but {v!r} now"
            for k, v in self.settings.items()
            if saved.get(k) != v
        ]
        if diffs:
            raise CheckpointError(
                f"{path}: training settings differ, cannot resume: " + "; ".join(diffs)
            )
        restore_blob(self.net, blob["supernet"], path)
        self.optimizer.load_state_dict(blob["optimizer"])
        self.step_index = int(blob["step"])
        history = json.loads(blob["history"])
        self._losses, self._evals = history["losses"], history["evals"]


class TrainingRun(Run):
    """The background run of :func:`train_supernet` (a :class:`~nasviz.Run` with the trained
    ``net`` and its ``history`` at hand)."""

    engine: SupernetTrainer

    @property
    def net(self) -> Supernet:
        return self.engine.net

    @property
    def history(self) -> pd.DataFrame:
        """Loss per step and sandwich member so far (see :meth:`SupernetTrainer.history`)."""
        return self.engine.history()

    @property
    def evaluations(self) -> pd.DataFrame:
        """Validation accuracy of the largest and smallest subnets per evaluated epoch."""
        return self.engine.evaluations()


def train_supernet(
    net: Supernet, data: Any, epochs: int | None = None, **options: Any
) -> TrainingRun:
    """A background run that trains ``net`` on ``data``; call ``start()`` (returns at once) or
    ``run()`` (blocks).

    Args:
        net: the supernet (trained in place).
        data: a nasviz Dataset (trains on ``train``, reports accuracy on ``val``), a Split or an
            ``(X, y)`` pair.
        epochs: passes over the training split (None: the family's ``default_epochs``, the
            default recipe: 30 for ElasticMLP, 10 for ElasticCNN, 20 for ElasticTransformer).
        **options: see :class:`SupernetTrainer`: ``batch_size`` (64), ``lr`` (None: the
            family's ``default_lr``, 3e-3, or 1e-2 for ElasticCNN; AdamW, cosine decay),
            ``weight_decay``, ``n_random`` (2 random subnets per step),
            ``distill`` (0.5: weight of the largest's soft targets for the other subnets),
            ``shrinking`` ("sandwich" or "progressive"), ``delay`` and ``ramp`` (DεpS),
            ``aux_weight`` (MoE load balancing), ``seed``, ``eval_every``,
            ``calibration_samples`` (BN re-calibration inputs kept in the net),
            ``checkpoint`` (a path written on stop and at the end, resumed from when it exists).

    Events: ``"loss"`` after every step with ``{"step", "epoch", "lr", "losses": {member: loss}}``,
    ``"eval"`` after evaluated epochs with validation accuracies, and the run's ``"status"``.
    """
    return TrainingRun(SupernetTrainer(net, data, epochs, **options), name=f"train {net.family}")
