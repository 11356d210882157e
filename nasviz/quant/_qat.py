"""Quantization-aware fine-tuning (QAT) as a background run on the training layer.

:func:`qat` fake-quantizes a copy of the model (:func:`~nasviz.quant.prepare_qat`: every forward
pass sees weights rounded to their ``bits``-bit per-channel grid, gradients reach the float
weights through a straight-through estimator) and fine-tunes that copy with
:class:`~nasviz.training.Trainer`: the same events, checkpoints (resumed when the path exists),
devices, precision and validation as :func:`~nasviz.training.train`. With ``teacher=`` the
copy learns from a full-precision teacher (:class:`~nasviz.training.DistillStep`, as
:func:`~nasviz.training.recover`) instead of from the labels alone.

``run.model`` is the fake-quantized copy as it trains; :meth:`QATRun.quantized` stores its
weights as codes (:func:`~nasviz.quant.convert`). The model given is never changed, also when
the call fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from nasviz.errors import ConfigError, check_options
from nasviz.quant._ptq import convert, prepare_qat
from nasviz.training import DistillStep, Trainer, TrainingRun
from nasviz.training._recover import MADE_BY_WRAPPER

__all__ = ["QATRun", "qat"]


class QATRun(TrainingRun):
    """A background quantization-aware fine-tuning run (a :class:`~nasviz.training.TrainingRun`
    whose ``model`` is the fake-quantized copy being trained)."""

    def __init__(self, engine: Trainer, name: str, bits: int | Mapping[str, int]):
        super().__init__(engine, name=name)
        self.bits = bits

    def quantized(self) -> nn.Module:
        """The trained copy with its weights stored as ``bits``-bit codes (a new model; outputs
        equal ``run.model``'s up to float rounding).

        Raises:
            ConfigError: the run is running or paused (its weights are still changing).
        """
        status = self.status
        if status.active:
            raise ConfigError(
                f"the QAT run is {status.state}; wait() for it (or stop() it) before quantized()"
            )
        return convert(self.model).eval()


def qat(
    model: nn.Module,
    data: Any,
    *,
    bits: int | Mapping[str, int] = 4,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    symmetric: bool | None = None,
    teacher: nn.Module | None = None,
    temperature: float = 4.0,
    alpha: float | None = None,
    **options: Any,
) -> QATRun:
    """A background run that fine-tunes a fake-quantized copy of ``model`` for ``bits``-bit
    weights; ``model`` itself is never changed.

    Args:
        model: a full-precision ``nn.Module`` (a trained one: QAT fine-tunes, it does not train
            from scratch).
        data: training data in any form :func:`~nasviz.data.as_batches` takes.
        bits: one bit-width for every selected layer (2, 3, 4, 8, 16) or ``{layer: bits}``
            (other layers stay at full precision), as in :func:`~nasviz.quant.quantize`.
        include, exclude: layer names or glob patterns (``describe(model)`` lists them).
        symmetric: symmetric codes, affine ones, or None (symmetric at 8 bits, affine below).
        teacher: a full-precision model to distil from (usually ``model`` itself); None trains
            on the labels (or ``loss_fn``) only.
        temperature, alpha: the distillation's settings when ``teacher`` is given (see
            :func:`~nasviz.training.recover`).
        **options: as for :func:`~nasviz.training.train`: ``steps`` or ``epochs``, ``lr``
            (default 1e-3), ``batch_size``, ``seed``, ``val``, ``checkpoint``, ``device``, ...

    Returns:
        a :class:`QATRun`: ``start()`` / ``wait()`` / ``stop()``, ``history``,
        ``evaluations``; ``run.model`` is the fake-quantized copy, ``run.quantized()`` the
        stored result.

    Raises:
        ConfigError: ``model`` is already quantized, a bit-width, layer name or option is not
            allowed (checked before anything is trained).
        ShapeError: a batch the model cannot take.
    """
    check_options("qat", options, [qat, Trainer], internal=MADE_BY_WRAPPER)
    if teacher is None and alpha is not None:
        raise ConfigError("alpha (the distillation share) needs teacher=")
    prepared = prepare_qat(model, bits, include=include, exclude=exclude, symmetric=symmetric)
    step = None if teacher is None else DistillStep(teacher, temperature, alpha)
    settings = {"qat": {"bits": bits if isinstance(bits, int) else dict(bits)}}
    trainer = Trainer(prepared, data, step=step, settings=settings, **options)
    width = f"{bits}-bit" if isinstance(bits, int) else "mixed-bit"
    return QATRun(trainer, name=f"qat {width} {type(model).__name__}", bits=bits)
