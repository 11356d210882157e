"""The training loop: one stepwise engine that every feature that trains runs on.

One engine step is one optimizer update: ``accumulate`` micro-batches, each moved to the
device (non-blocking from pinned memory on CUDA) and handed to the :class:`~nasviz.training.Step`
under autocast; then the losses are checked (a NaN or infinite loss fails the run before the
weights change), gradients unscaled (fp16) and clipped, and the optimizer steps at the learning
rate the schedule gives for that step.

Determinism and exact resume: batches come from :class:`~nasviz.data.Batches` (the order of an
epoch depends on ``(seed, epoch)``; a resumed epoch starts at the right batch), and random
numbers drawn inside a step (dropout) come from torch's generators seeded by
``(seed, step, micro-batch)`` inside :func:`torch.random.fork_rng`, which restores the global
generators afterwards. A checkpoint holds the model, optimizer, scaler, the step's own modules,
the position in the data and the history, so a run resumed from the checkpoint of step k
computes what the uninterrupted run computes.

Checks happen in the constructor, in the caller's thread, before anything changes: arguments,
the device, the first batch through the model and the loss (shapes, keys, label ranges). A
failure there leaves the model as it was (device included).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from nasviz.data._batch import BatchFn, default_batch_fn, logits_of, split_batch
from nasviz.data._batches import as_batches
from nasviz.errors import ConfigError, check_int, check_real
from nasviz.runner import Engine, Event, Progress
from nasviz.training._checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from nasviz.training._checks import check_first_batch, check_scalar, mean_losses
from nasviz.training._cursor import DataCursor
from nasviz.training._device import model_device, resolve_device, resolve_precision
from nasviz.training._losses import (
    check_task,
    lm_targets,
    task_loss,
)
from nasviz.training._model import as_module
from nasviz.training._resume import restore_trainer, state_fits, trainer_blob
from nasviz.training._schedule import check_schedule, lr_factor, make_optimizer
from nasviz.training._step import Step, SupervisedStep

__all__ = ["TRAINING_FORMAT", "Trainer"]

#: The format tag of the checkpoints a training run writes.
TRAINING_FORMAT = "nasviz.training/1"
LossFn = Callable[[Any, Any], torch.Tensor]


def _positive(name: str, value: Any) -> float:
    value = check_real(name, value)
    if value <= 0:
        raise ConfigError(f"{name} must be a number > 0, got {value}")
    return value


def _check_trainable(model: nn.Module) -> None:
    """ConfigError for a model whose every weight matrix is stored as post-training quantized
    codes (no float weights: training it would move only its biases). A partly quantized
    model (some layers, or only the experts) trains its float layers."""
    from nasviz.quant._modules import QuantizedExperts, QuantizedWeight

    quantized = [
        name.split(".parametrizations.")[0] or type(model).__name__
        for name, module in model.named_modules()
        if isinstance(module, QuantizedWeight | QuantizedExperts)
    ]
    if not quantized or any(p.requires_grad and p.dim() >= 2 for p in model.parameters()):
        return
    raise ConfigError(
        f"every weight of this {type(model).__name__} is post-training quantized codes "
        f"(quantize(); layers {', '.join(repr(q) for q in quantized[:6])}"
        f"{' ...' if len(quantized) > 6 else ''}): only its biases could train; fine-tune the "
        "full-precision model and quantize it afterwards, or train with fake quantization: "
        "qat(model, data, bits) or recover(prepare_qat(model, bits), teacher, data, steps=...)"
    )


class Trainer(Engine):
    """Trains ``model`` on ``data``; driven by a :class:`~nasviz.training.TrainingRun`.

    See :func:`~nasviz.training.train` for the arguments. Subclasses (supernet training) plug
    in their own ``step``, settings, evaluation and checkpoint contents through the hooks
    :meth:`before_update`, :meth:`after_update`, :meth:`evaluate_epoch`, :meth:`model_blob`
    and :meth:`restore_model`.

    Contract: driven by one run thread; ``progress``, ``history`` and ``evaluations`` may be
    read from any thread. Nothing else may use the model while a step runs.
    """

    formats: tuple[str, ...] = (TRAINING_FORMAT,)

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        *,
        steps: int | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        shuffle: bool | None = None,
        seed: int = 0,
        lr: float = 1e-3,
        optimizer: Any = "adamw",
        weight_decay: float = 0.01,
        schedule: Any = "cosine",
        warmup: float = 0.05,
        accumulate: int = 1,
        clip: float | None = None,
        precision: str = "fp32",
        device: Any = None,
        task: str | None = None,
        loss_fn: LossFn | None = None,
        batch_fn: BatchFn | None = None,
        val: Any = None,
        metrics: Any = None,
        eval_every: int = 1,
        checkpoint: str | Path | None = None,
        checkpoint_every: int | None = None,
        step: Step | None = None,
        settings: Mapping[str, Any] | None = None,
    ):
        """See :func:`~nasviz.training.train`; ``step`` replaces the supervised step and
        ``settings`` adds what a resumed checkpoint must also match."""
        self.model = as_module(model)
        _check_trainable(self.model)
        seed = check_int("seed", seed, 0)
        lr = _positive("lr", lr)
        weight_decay = check_real("weight_decay", weight_decay)
        warmup = check_real("warmup (a fraction of the steps)", warmup)
        if not 0.0 <= warmup < 1.0:
            raise ConfigError(f"warmup must be a fraction in [0, 1), got {warmup}")
        accumulate = check_int("accumulate", accumulate, 1)
        eval_every = check_int("eval_every (epochs)", eval_every, 1)
        if clip is not None:
            clip = _positive("clip (max gradient norm)", clip)
        if steps is not None and epochs is not None:
            raise ConfigError("give steps or epochs, not both")
        if checkpoint_every is not None:
            checkpoint_every = check_int("checkpoint_every (steps)", checkpoint_every, 1)
        for name, fn in (("loss_fn", loss_fn), ("batch_fn", batch_fn)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name} must be a function, got {type(fn).__name__}")
        self.task = check_task(task)
        schedule = check_schedule(schedule)
        self.batches = as_batches(
            data, batch_size=batch_size, shuffle=shuffle, seed=seed, what="training data"
        )
        source = self.batches.source
        if shuffle is None and source.owns_order and source.own_shuffle is None:
            self.batches = self.batches.replace(shuffle=True)  # no choice of its own: shuffled
        self.device = resolve_device(device, self.model)
        self.amp = resolve_precision(precision, self.device)
        if self.device.type == "cuda":
            self.batches = self.batches.replace(pin_memory=True)
        self.length = self.batches.length
        if steps is not None:
            self.total = check_int("steps", steps, 1)
        else:
            epochs = 1 if epochs is None else check_int("epochs", epochs, 1)
            if self.length is None:
                raise ConfigError(
                    "the training data is a stream of unknown length: give steps= (the "
                    "schedule and the progress need a total), or data with a len()"
                )
            self.total = math.ceil(epochs * self.length / accumulate)
        self.epochs = epochs
        self.accumulate, self.clip, self.lr, self.warmup = accumulate, clip, lr, warmup
        self.schedule = schedule
        self.loss_fn, self.batch_fn = loss_fn, batch_fn or default_batch_fn
        if step is not None and not isinstance(step, Step):
            hint = " (did you mean steps=?)" if isinstance(step, int) else ""
            raise ConfigError(
                f"step must be a nasviz.training.Step (what one micro-batch computes), got "
                f"{step!r} ({type(step).__name__}){hint}"
            )
        self.step_fn = SupervisedStep() if step is None else step
        self.val, self.metrics, self.eval_every = val, metrics, eval_every
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_every = checkpoint_every
        self.settings = {
            "steps": steps,
            "epochs": epochs,
            "batch_size": self.batches.batch_size,
            "shuffle": self.batches.shuffle,
            "seed": seed,
            "lr": lr,
            "optimizer": optimizer if isinstance(optimizer, str) else "custom",
            "weight_decay": weight_decay,
            "schedule": schedule if isinstance(schedule, str) else "custom",
            "warmup": warmup,
            "accumulate": accumulate,
            "clip": clip,
            "precision": precision,
            "task": task,
            **(settings or {}),
        }
        self.seed = seed
        self.step_index = 0
        self.cursor = DataCursor(self.batches, self.device)
        self._scale = 1.0
        self._lock = threading.Lock()
        self._losses: list[dict[str, Any]] = []
        self._evals: list[dict[str, Any]] = []
        self._training_mode = self.model.training

        home = model_device(self.model)
        try:
            if self.device != home:
                self.model.to(self.device)  # the model moves once
            check_first_batch(self)
            extra = [p for m in self.step_fn.modules() for p in m.parameters() if p.requires_grad]
            self.optimizer = make_optimizer(
                optimizer, [*self.model.parameters(), *extra], lr, weight_decay
            )
            self.scaler = self.amp.scaler()
            self.settings = json.loads(json.dumps({**self.settings, **self.step_fn.settings()}))
            if self.checkpoint is not None and checkpoint_exists(self.checkpoint):
                blob, source = load_checkpoint(self.checkpoint)
                self.restore(blob, source)
        except BaseException:
            if self.device != home:
                self.model.to(home)
            raise

    # ---- helpers for steps -------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        """The precision's autocast on the device (a no-op for fp32)."""
        return self.amp.autocast()

    def forward(self, model: nn.Module, batch: Any) -> tuple[Any, Any]:
        """``(outputs, targets)`` of ``model`` on ``batch`` (``batch_fn``; a causal LM's labels
        default to its input ids)."""
        outputs, targets = self.batch_fn(model, batch)
        if self.task == "causal_lm" and targets is None and self.batch_fn is default_batch_fn:
            targets = lm_targets(split_batch(batch)[0], targets)
        return outputs, targets

    def loss(self, outputs: Any, targets: Any, batch: Any) -> torch.Tensor:
        """``loss_fn(outputs, batch)``, or the task's default loss of the logits and targets."""
        if self.loss_fn is not None:
            return self.loss_fn(outputs, batch)
        return task_loss(self.task, logits_of(outputs), targets)

    def backward(self, loss: torch.Tensor, weight: float = 1.0) -> None:
        """Backpropagates ``weight * loss``, divided among the update's micro-batches and scaled
        for fp16. ConfigError unless ``loss`` is a scalar tensor."""
        check_scalar(loss)
        loss = loss.reshape(()) * (weight * self._scale)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    # ---- engine ------------------------------------------------------------------------------
    def setup(self) -> None:
        self.model.train()
        self.step_fn.setup(self)

    def finished(self) -> bool:
        return self.step_index >= self.total

    def progress(self) -> Progress:
        return Progress(self.step_index, self.total, unit="step")

    def learning_rate(self, step: int) -> float:
        return self.lr * lr_factor(self.schedule, step, self.total, self.warmup)

    def _micro_batches(self, step: int) -> int:
        if self.epochs is None or self.length is None:
            return self.accumulate
        return min(self.accumulate, self.epochs * self.length - step * self.accumulate)

    @contextlib.contextmanager
    def _seeded(self, step: int, micro: int) -> Iterator[None]:
        """Random numbers of one micro-batch from (seed, step, micro); global state restored."""
        cuda = [self.device.index] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda, device_type="cuda"):
            seed = ((self.seed * 1_000_003 + step) * 1_009 + micro) % (2**63)
            torch.default_generator.manual_seed(seed)
            if cuda:
                with torch.cuda.device(self.device):
                    torch.cuda.manual_seed(seed)
            yield

    def step(self) -> list[Event]:
        step = self.step_index
        lr = self.learning_rate(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        events = list(self.before_update(step))
        self.optimizer.zero_grad(set_to_none=True)
        micro = self._micro_batches(step)
        self._scale = 1.0 / micro
        totals: dict[str, torch.Tensor] = {}
        for m in range(micro):
            batch = next(self.cursor)
            with self._seeded(step, m):
                losses = self.step_fn(self, batch, step)
            for name, value in losses.items():
                value = value.detach().float().reshape(())
                totals[name] = totals[name] + value if name in totals else value
        values = mean_losses(totals, micro, step, self.cursor.last_epoch, self.checkpoint)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.clip is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.after_update(step)
        self.step_index += 1
        epoch = self.cursor.last_epoch
        with self._lock:
            self._losses += [
                {"step": self.step_index, "epoch": epoch, "member": k, "loss": v, "lr": lr}
                for k, v in values.items()
            ]
        events.append(
            Event("loss", {"step": self.step_index, "epoch": epoch, "lr": lr, "losses": values})
        )
        ended = self.cursor.ended()
        for e in ended:
            if (e + 1) % self.eval_every == 0:
                row = self.evaluate_epoch(e)
                if row is not None:
                    with self._lock:
                        self._evals.append(row)
                    events.append(Event("eval", dict(row)))
        due = (
            self.step_index % self.checkpoint_every == 0
            if self.checkpoint_every is not None
            else bool(ended)
        )
        if self.checkpoint is not None and due and not self.finished():
            self.save(self.checkpoint)
            events.append(
                Event("checkpoint", {"step": self.step_index, "path": str(self.checkpoint)})
            )
        return events

    def teardown(self, reason: str) -> None:
        self.cursor.close()
        self.step_fn.teardown(self)
        self.model.train(self._training_mode)
        if self.checkpoint is not None and reason in ("stopped", "finished"):
            self.save(self.checkpoint)

    # ---- hooks for subclasses ------------------------------------------------------------------
    def before_update(self, step: int) -> list[Event]:
        """Called before the update of ``step``; returns events."""
        return []

    def after_update(self, step: int) -> None:
        """Called after the optimizer stepped for ``step``."""

    def evaluate_epoch(self, epoch: int) -> dict[str, Any] | None:
        """The evaluation row after ``epoch`` (0-based), None for none: ``val`` data measured
        with ``metrics`` (default by task: accuracy, mse or perplexity)."""
        if self.val is None:
            return None
        from nasviz.training._metrics import default_metrics, evaluate

        values = evaluate(
            self.model,
            self.val,
            default_metrics(self.task) if self.metrics is None else self.metrics,
            device=self.device,
            precision=self.amp.name,
            batch_fn=self.batch_fn if self.batch_fn is not default_batch_fn else None,
            task=self.task,
            what="validation data",
        )
        return {
            "epoch": epoch + 1,
            "step": self.step_index,
            **{f"val_{k}": v for k, v in values.items()},
        }

    def model_blob(self) -> Any:
        """What a checkpoint holds of the model (its state dict)."""
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def restore_model(self, blob: Any, path: Path) -> None:
        """Loads :meth:`model_blob`'s result (checked before anything is loaded)."""
        state_fits(self.model, blob, str(path))
        self.model.load_state_dict(blob)

    # ---- results -------------------------------------------------------------------------------
    def history(self) -> pd.DataFrame:
        """One row per (step, loss name): step, epoch, member, loss, lr."""
        with self._lock:
            return pd.DataFrame(self._losses, columns=["step", "epoch", "member", "loss", "lr"])

    def evaluations(self) -> pd.DataFrame:
        """One row per evaluated epoch: epoch, step and ``val_<metric>`` columns."""
        with self._lock:
            return (
                pd.DataFrame(self._evals)
                if self._evals
                else pd.DataFrame(columns=["epoch", "step"])
            )

    # ---- checkpoints ---------------------------------------------------------------------------
    def records(self) -> dict[str, list[dict[str, Any]]]:
        """A copy of the loss and evaluation records (what checkpoints keep as history)."""
        with self._lock:
            return {"losses": list(self._losses), "evals": list(self._evals)}

    def load_records(self, losses: list[dict[str, Any]], evals: list[dict[str, Any]]) -> None:
        with self._lock:
            self._losses, self._evals = list(losses), list(evals)

    def save(self, path: str | Path) -> Path:
        """Writes everything a resume needs, atomically (see :mod:`nasviz.training._checkpoint`)."""
        return save_checkpoint(trainer_blob(self), path)

    def restore(self, blob: dict[str, Any], path: Path) -> None:
        """Resumes from a checkpoint's contents (checked before anything is loaded)."""
        restore_trainer(self, blob, path)
