"""``recover``: distillation from a teacher to win back what compression cost.

The student (a pruned, shrunk, quantized or smaller model) learns from the teacher's logits
(KL divergence of temperature-softened distributions, Hinton et al.), optionally mixed with the
task loss on the labels, and optionally from the teacher's hidden states layer by layer (as
CoFi and AutoDistil do): ``MSE(proj(h_student), h_teacher)`` for named pairs of layers, with a
learned linear projection where the widths differ (channels of a feature map, the last
dimension otherwise). The run is an ordinary training run (same events, checkpoints, devices,
precision), so :class:`~nasviz.ui.TrainingMonitor` shows its losses live.

The teacher is never changed: it runs in eval mode without gradients, on the run's device
while the run runs (its device and mode are restored when the run ends), and the hooks that
read hidden states exist only during each forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from nasviz.data._batch import describe, logits_of, move, split_batch
from nasviz.errors import ConfigError, ShapeError, check_options, check_real
from nasviz.training._device import model_device
from nasviz.training._losses import distillation_loss
from nasviz.training._model import as_module, eval_mode
from nasviz.training._step import Step

if TYPE_CHECKING:
    from nasviz.training._loop import Trainer
    from nasviz.training._run import TrainingRun

__all__ = ["DistillStep", "auto_pairs", "recover"]

#: Trainer arguments that recover (and qat) set themselves: never options of theirs.
MADE_BY_WRAPPER = ("model", "data", "step", "settings")


def auto_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple[str, str]]:
    """Layer pairs for same-depth models: the blocks (children with children of their own) of
    the longest ``ModuleList`` / ``Sequential`` that both models have under the same name and
    with the same length (transformer layers, residual blocks), paired by position."""
    best: tuple[str, nn.Module] | None = None
    teacher_modules = dict(teacher.named_modules())
    for name, module in student.named_modules():
        other = teacher_modules.get(name)
        if (
            isinstance(module, nn.ModuleList | nn.Sequential)
            and type(other) is type(module)
            and len(other) == len(module)
            and (best is None or len(module) > len(best[1]))
        ):
            best = (name, module)
    if best is None:
        return []
    prefix = f"{best[0]}." if best[0] else ""
    return [
        (f"{prefix}{i}", f"{prefix}{i}")
        for i, block in enumerate(best[1])
        if next(block.children(), None) is not None
    ]


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return getattr(output, "last_hidden_state", None)


@contextlib.contextmanager
def _capture(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Outputs of the named submodules during the forward passes inside the block."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in names:
            module = model.get_submodule(name)

            def hook(_module: nn.Module, _args: Any, output: Any, name: str = name) -> None:
                seen[name] = _first_tensor(output)

            handles.append(module.register_forward_hook(hook))
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _width_dim(h: torch.Tensor) -> int:
    """The dimension a projection maps: channels of (B, C, H, W) maps, else the last."""
    return 1 if h.ndim == 4 else -1


def _project(proj: nn.Module | None, h: torch.Tensor) -> torch.Tensor:
    if proj is None:
        return h
    if _width_dim(h) == 1:
        return proj(h.movedim(1, -1)).movedim(-1, 1)  # (B, H, W, C) -> (B, C', H, W)
    return proj(h)


def _mixed(batch: Any, alpha: float) -> Any:
    """``batch`` with each input mixed with another of the batch: ``lam * x_i + (1 - lam) *
    x_j``, ``lam ~ Beta(alpha, alpha)`` per example folded to ``>= 0.5``, so the labels of the
    batch stay those of each mix's larger part. Uses torch's global generator (seeded per
    micro-batch by the trainer)."""
    inputs, _ = split_batch(batch)
    n = inputs.shape[0]
    lam = torch.distributions.Beta(alpha, alpha).sample((n,))
    lam = torch.maximum(lam, 1 - lam).to(inputs.device, inputs.dtype)
    lam = lam.reshape(n, *([1] * (inputs.ndim - 1)))
    other = inputs[torch.randperm(n).to(inputs.device)]
    mixed = lam * inputs + (1 - lam) * other
    if isinstance(batch, torch.Tensor):
        return mixed
    return type(batch)([mixed, *batch[1:]])


class DistillStep(Step):
    """The distillation loss on one micro-batch: ``alpha * KD + (1 - alpha) * task +
    hidden_weight * hidden`` (see :func:`recover`)."""

    def __init__(
        self,
        teacher: nn.Module,
        temperature: float = 4.0,
        alpha: float | None = None,
        hidden: Any = None,
        hidden_weight: float = 1.0,
        mixup: float | None = None,
    ):
        self.teacher = as_module(teacher)
        self.temperature = check_real("temperature", temperature)
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if alpha is not None and not 0.0 <= check_real("alpha", alpha) <= 1.0:
            raise ConfigError(f"alpha (the distillation share) must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.hidden_weight = check_real("hidden_weight", hidden_weight)
        if mixup is not None and check_real("mixup", mixup) <= 0:
            raise ConfigError(f"mixup (the Beta distribution's alpha) must be > 0, got {mixup}")
        self.mixup = mixup
        self.hidden = hidden
        self.pairs: list[tuple[str, str]] = []
        self.projections = nn.ModuleDict()
        self.needs_targets = alpha is not None and alpha < 1.0  # None: labels if there are
        self._home: tuple[torch.device, bool] | None = None

    def modules(self) -> list[nn.Module]:
        return [self.projections] if self.pairs else []

    def settings(self) -> dict[str, Any]:
        return {
            "distill": {
                "temperature": self.temperature,
                "alpha": self.alpha,
                "hidden": self.pairs,
                "hidden_weight": self.hidden_weight,
                "mixup": self.mixup,
            }
        }

    # ---- checks and modules from the first batch -------------------------------------------
    def _resolve_pairs(self, student: nn.Module) -> list[tuple[str, str]]:
        if self.hidden is None:
            return []
        if self.hidden == "auto":
            pairs = auto_pairs(student, self.teacher)
            if not pairs:
                raise ConfigError(
                    "hidden='auto' found no blocks both models hold under one name (a "
                    "ModuleList or Sequential of equal length); name the layer pairs: "
                    "hidden=[('student.layer', 'teacher.layer'), ...]"
                )
            return pairs
        if isinstance(self.hidden, str) or not all(
            isinstance(p, tuple | list) and len(p) == 2 for p in self.hidden
        ):
            raise ConfigError(
                f"hidden must be None, 'auto' or a list of (student layer, teacher layer) "
                f"names; got {self.hidden!r}"
            )
        pairs = [(str(s), str(t)) for s, t in self.hidden]
        for which, model, names in (
            ("student", student, [s for s, _ in pairs]),
            ("teacher", self.teacher, [t for _, t in pairs]),
        ):
            known = dict(model.named_modules())
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ConfigError(f"{which} has no layer {unknown[0]!r} (hidden=)")
        return pairs

    def prepare(self, trainer: Trainer, batch: Any) -> None:
        if self.teacher is trainer.model:
            raise ConfigError(
                "the teacher must be a separate model (e.g. a copy made before pruning)"
            )
        inputs, targets = split_batch(batch)
        if self.mixup is not None and (
            isinstance(batch, Mapping)
            or not isinstance(inputs, torch.Tensor)
            or not inputs.is_floating_point()
        ):
            raise ConfigError(
                f"mixup mixes floating-point input tensors (images, features) of tuple or tensor "
                f"batches; these batches hold {describe(inputs)}"
                + (" in a dict" if isinstance(batch, Mapping) else "")
                + ": recover without mixup"
            )
        if self.alpha is None:
            self.alpha = 0.9 if targets is not None or trainer.loss_fn is not None else 1.0
            self.needs_targets = self.alpha < 1.0
        self.pairs = self._resolve_pairs(trainer.model)
        here = model_device(self.teacher)
        restore = eval_mode(self.teacher)
        try:
            with torch.no_grad(), trainer.autocast():
                with _capture(self.teacher, [t for _, t in self.pairs]) as seen_t:
                    t_out, _ = trainer.forward(self.teacher, move(batch, here))
                with _capture(trainer.model, [s for s, _ in self.pairs]) as seen_s:
                    s_out, _ = trainer.forward(trainer.model, batch)
        finally:
            restore()
        s_logits, t_logits = logits_of(s_out), logits_of(t_out)
        if s_logits.shape != t_logits.shape:
            raise ShapeError(
                f"student and teacher must have outputs of one shape to distil; got "
                f"{describe(s_logits)} and {describe(t_logits)}"
            )
        for s_name, t_name in self.pairs:
            self._make_projection(s_name, t_name, seen_s.get(s_name), seen_t.get(t_name), trainer)

    def _make_projection(
        self, s_name: str, t_name: str, hs: Any, ht: Any, trainer: Trainer
    ) -> None:
        if not isinstance(hs, torch.Tensor) or not isinstance(ht, torch.Tensor):
            raise ShapeError(
                f"layers {s_name!r} / {t_name!r} return {describe(hs)} / {describe(ht)}; "
                "hidden-state matching needs tensors"
            )
        dim = _width_dim(hs)
        rest_s = [d for i, d in enumerate(hs.shape) if i != dim % hs.ndim]
        rest_t = [d for i, d in enumerate(ht.shape) if i != dim % ht.ndim]
        if hs.ndim != ht.ndim or rest_s != rest_t:
            raise ShapeError(
                f"hidden states of {s_name!r} {tuple(hs.shape)} and {t_name!r} "
                f"{tuple(ht.shape)} differ beyond their width; pair layers whose outputs "
                "match in every other dimension"
            )
        key = f"p{len(self.projections)}"
        if hs.shape[dim] != ht.shape[dim]:
            proj = nn.Linear(hs.shape[dim], ht.shape[dim], bias=False)
            self.projections[key] = proj.to(trainer.device)
        else:
            self.projections[key] = nn.Identity()

    # ---- the run ---------------------------------------------------------------------------
    def setup(self, trainer: Trainer) -> None:
        self._home = (model_device(self.teacher), self.teacher.training)
        self.teacher.to(trainer.device).eval()

    def teardown(self, trainer: Trainer) -> None:
        if self._home is not None:
            device, training = self._home
            self.teacher.to(device).train(training)
            self._home = None

    def __call__(self, trainer: Trainer, batch: Any, step: int) -> Mapping[str, torch.Tensor]:
        if self.mixup is not None:
            batch = _mixed(batch, self.mixup)
        student_names = [s for s, _ in self.pairs]
        teacher_names = [t for _, t in self.pairs]
        with trainer.autocast():
            with torch.no_grad(), _capture(self.teacher, teacher_names) as ht:
                t_out, _ = trainer.forward(self.teacher, batch)
            with _capture(trainer.model, student_names) as hs:
                s_out, targets = trainer.forward(trainer.model, batch)
            inputs = split_batch(batch)[0]
            mask = None
            if isinstance(inputs, Mapping) and inputs.get("attention_mask") is not None:
                mask = inputs["attention_mask"].bool()
            s_logits = logits_of(s_out)
            if mask is not None and mask.shape != s_logits.shape[:-1]:
                mask = None  # a sequence classifier: one distribution per sequence
            kd = distillation_loss(s_logits, logits_of(t_out), self.temperature, mask)
            losses = {"distill": kd}
            total = self.alpha * kd
            if self.alpha < 1.0:
                task = trainer.loss(s_out, targets, batch)
                losses["task"] = task
                total = total + (1.0 - self.alpha) * task
            if self.pairs:
                terms = [
                    F.mse_loss(_project(proj, hs[s].float()), ht[t].float())
                    for (s, t), proj in zip(self.pairs, self.projections.values(), strict=True)
                ]
                hidden = torch.stack(terms).mean()
                losses["hidden"] = hidden
                total = total + self.hidden_weight * hidden
        trainer.backward(total)
        return {"total": total, **losses}


def recover(
    model: nn.Module,
    teacher: nn.Module,
    data: Any,
    *,
    steps: int,
    temperature: float = 4.0,
    alpha: float | None = None,
    hidden: Any = None,
    hidden_weight: float = 1.0,
    mixup: float | None = None,
    **options: Any,
) -> TrainingRun:
    """A background run that trains ``model`` (in place) to behave like ``teacher``.

    Args:
        model: the student (e.g. a pruned and shrunk copy of the teacher).
        teacher: the reference model; never changed (see the module docstring).
        data: any form :func:`~nasviz.data.as_batches` takes; labels optional.
        steps: optimizer updates.
        temperature: softens both distributions (the KD term is scaled by its square).
        alpha: share of the distillation loss; the rest is the task loss on the labels.
            None: 0.9 when the batches have labels, 1.0 (distillation only) when not. (An
            ElasticCNN pruned to half its channels and fine-tuned 30 steps on digits recovered
            0.7-2.2 test points more with 0.9 and temperature 4 than with 0.5 and 2, 3 seeds.)
        hidden: None; ``"auto"`` (blocks both models hold under one name, see
            :func:`auto_pairs`); or ``[(student layer, teacher layer), ...]`` names whose
            outputs are matched (MSE, through a learned linear projection where widths differ).
        hidden_weight: weight of the hidden-state term.
        mixup: None, or ``a`` > 0: the student and the teacher both see each input mixed with
            another of its batch (``lam * x_i + (1 - lam) * x_j``, ``lam ~ Beta(a, a)`` folded
            to >= 0.5, the labels those of the larger part), so the student matches the
            teacher's function between the examples too ("function matching", Beyer et al.
            2022). For floating-point inputs (images, features), not token ids. ``1.0`` is a
            good start: on the pruned ElasticCNN of ``python -m bench training`` it gains over
            cross-entropy fine-tuning (cross-entropy on the same mixes does worse, so the gain
            is the teacher's), though less than plain distillation at its best learning rate;
            on a ResNet that cross-entropy alone brings within 1.5 points of its teacher it
            gains nothing.
        **options: as for :func:`~nasviz.training.train` (``lr``, ``device``, ``precision``,
            ``batch_size``, ``checkpoint``, ``val``, ...).

    Returns:
        a :class:`~nasviz.training.TrainingRun`; ``run.model`` is the recovered model. Losses
        are reported as ``total``, ``distill``, ``task`` and ``hidden``.
    """
    from nasviz.training._loop import Trainer
    from nasviz.training._run import TrainingRun

    # recover makes the step; a typo would otherwise reach the Trainer as some other option
    check_options("recover", options, [recover, Trainer], internal=MADE_BY_WRAPPER)
    step = DistillStep(teacher, temperature, alpha, hidden, hidden_weight, mixup)
    trainer = Trainer(model, data, steps=steps, step=step, **options)
    return TrainingRun(trainer, name=f"recover {type(model).__name__}")
