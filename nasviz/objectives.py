"""Objectives: named, directed measurements of a model (or of one subnet of a supernet).

An :class:`Objective` is a callable ``objective(model, arch=None) -> float`` with a ``name`` and
a ``direction`` (``"minimize"`` or ``"maximize"``). With an ``arch``, ``model`` must be a supernet
(it has ``subnet(arch)`` and ``export(arch)``) and the objective measures that subnet.

Built-ins: :func:`params`, :func:`macs` (torch's own FLOP counter), :func:`latency` (median of
timed runs after warm-up, thread count recorded) and :func:`accuracy`. ``cheap`` marks exact,
inexpensive objectives (params, MACs) that a predictor-guided search computes instead of
predicting.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasviz.errors import ConfigError, ShapeError

__all__ = [
    "DIRECTIONS",
    "LatencyMeasurement",
    "Objective",
    "accuracy",
    "as_objective",
    "count_macs",
    "count_params",
    "evaluate_accuracy",
    "latency",
    "macs",
    "measure_latency",
    "params",
]

DIRECTIONS = ("minimize", "maximize")


class Objective:
    """A named, directed measurement.

    Args:
        name: column name in results tables.
        direction: ``"minimize"`` or ``"maximize"``.
        fn: ``fn(model, arch) -> float``; None for objectives whose values come from a user
            function's returned dict (``Search(fn, objectives=[("loss", "minimize")])``).
        cheap: exact and inexpensive (no need to predict it).
        unit: for axis labels ("", "%", "ms", "MMACs", ...).

    Contract: ``__call__`` may be called from several threads at once; built-ins keep no
    mutable state besides a thread-safe cache.
    """

    def __init__(
        self,
        name: str,
        direction: str,
        fn: Callable[[Any, Any], float] | None = None,
        cheap: bool = False,
        unit: str = "",
    ):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"an objective needs a non-empty name, got {name!r}")
        if direction not in DIRECTIONS:
            raise ConfigError(
                f"objective {name!r}: direction must be one of {DIRECTIONS}, got {direction!r}"
            )
        self.name = name
        self.direction = direction
        self.fn = fn
        self.cheap = cheap
        self.unit = unit

    @property
    def sign(self) -> float:
        """+1 for minimize, -1 for maximize: ``sign * value`` is always 'lower is better'."""
        return 1.0 if self.direction == "minimize" else -1.0

    def __call__(self, model: Any, arch: Any = None) -> float:
        if self.fn is None:
            raise ConfigError(
                f"objective {self.name!r} has no function; its values come from the dict your "
                "evaluation function returns"
            )
        return float(self.fn(model, arch))

    def __repr__(self) -> str:
        return f"Objective({self.name!r}, {self.direction!r})"


def as_objective(spec: Objective | tuple[str, str] | Any) -> Objective:
    """An Objective from an Objective or a ``(name, direction)`` pair; a clear error otherwise."""
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(s, str) for s in spec):
        return Objective(spec[0], spec[1])
    if isinstance(spec, str):
        raise ConfigError(
            f"objective {spec!r} has no direction; write ({spec!r}, 'minimize') or ({spec!r}, 'maximize')"
        )
    raise ConfigError(
        f"an objective is an Objective or a (name, direction) pair, got {spec!r}; "
        "built-ins: params(), macs(input_shape), latency(input_shape), accuracy(data)"
    )


# ---- resolving (model, arch) --------------------------------------------------------------
def _is_supernet(model: Any) -> bool:
    return hasattr(model, "subnet") and hasattr(model, "export")


def _active(model: Any, arch: Any):
    """Context in which ``model(x)`` computes the subnet ``arch`` (a no-op without one)."""
    if arch is None:
        return contextlib.nullcontext()
    if not _is_supernet(model):
        raise ConfigError(
            f"an arch was given but {type(model).__name__} is not a supernet "
            "(it needs subnet(arch) and export(arch))"
        )
    return model.subnet(arch)


def _static(model: Any, arch: Any) -> nn.Module:
    """The standalone module for ``arch`` (the model itself without one)."""
    if arch is None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"expected a torch nn.Module, got {type(model).__name__}")
        return model
    if not _is_supernet(model):
        raise ConfigError(f"an arch was given but {type(model).__name__} is not a supernet")
    return model.export(arch)


def _example_input(
    model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype | None
) -> torch.Tensor:
    if dtype is None:
        dtype = getattr(model, "input_dtype", None)
    if dtype is None:  # token models start with an embedding: feed token ids
        leaves = (m for m in model.modules() if not next(m.children(), None))
        first_layer = next(
            (m for m in leaves if next(m.parameters(recurse=False), None) is not None), None
        )
        dtype = torch.long if isinstance(first_layer, nn.Embedding) else None
    if dtype is None:
        first = next(iter(model.parameters()), None)
        dtype = torch.float32 if first is None or not first.is_floating_point() else first.dtype
    if dtype in (torch.long, torch.int64, torch.int32):
        return torch.zeros(input_shape, dtype=dtype)
    return torch.randn(input_shape, generator=torch.Generator().manual_seed(0), dtype=dtype)


def _eval_mode(model: nn.Module) -> Callable[[], None]:
    """Puts ``model`` in eval mode; returns the function that restores its mode.

    A model already in eval mode is not touched at all, so concurrent evaluations of one
    (supernet) model from several threads never flip each other's mode.
    """
    if not model.training:
        return lambda: None
    model.eval()
    return lambda: model.train(True)


# ---- params -------------------------------------------------------------------------------
def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def params(trainable_only: bool = False) -> Objective:
    """Parameter count (minimize). For a supernet arch, counts the exported subnet's parameters,
    or uses ``model.count_params(arch)`` when the supernet has that fast path."""

    def fn(model: Any, arch: Any) -> float:
        if arch is not None and hasattr(model, "count_params"):
            return float(model.count_params(arch))
        return float(count_params(_static(model, arch), trainable_only))

    return Objective("params", "minimize", fn, cheap=True)


# ---- MACs ---------------------------------------------------------------------------------
def count_macs(
    model: nn.Module,
    input_shape: tuple[int, ...],
    arch: Any = None,
    dtype: torch.dtype | None = None,
) -> int:
    """Multiply-accumulates of one forward pass on an input of ``input_shape`` (batch included),
    counted by :class:`torch.utils.flop_counter.FlopCounterMode` (MACs = FLOPs / 2).

    Counts matrix multiplications and convolutions (what dominates); element-wise ops are free.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(input_shape, tuple | list) or not all(
        isinstance(d, int) and d > 0 for d in input_shape
    ):
        raise ShapeError(
            f"input_shape must be a tuple of positive ints including the batch, got {input_shape!r}"
        )
    x = _example_input(model, tuple(input_shape), dtype)
    restore = _eval_mode(model)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), _active(model, arch), counter:
            model(x)
    except (RuntimeError, IndexError) as exc:
        raise ShapeError(
            f"forward pass on an input of shape {tuple(input_shape)} failed: {exc}"
        ) from exc
    finally:
        restore()
    return counter.get_total_flops() // 2


def macs(input_shape: tuple[int, ...], dtype: torch.dtype | None = None) -> Objective:
    """Multiply-accumulates of one forward pass (minimize); see :func:`count_macs`."""
    shape = tuple(input_shape)

    def fn(model: Any, arch: Any) -> float:
        return float(count_macs(model, shape, arch, dtype))

    return Objective("macs", "minimize", fn, cheap=True)


# ---- latency ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyMeasurement:
    """Timed forward passes: median and spread in milliseconds, and how they were taken."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    warmup: int
    threads: int
    input_shape: tuple[int, ...]


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    repeats: int = 30,
    warmup: int = 5,
    threads: int | None = None,
    dtype: torch.dtype | None = None,
) -> LatencyMeasurement:
    """Times ``repeats`` forward passes after ``warmup`` untimed ones, in eval mode, no grad.

    Args:
        threads: torch intra-op threads during the measurement (restored after); None keeps
            the current setting. The count used is recorded in the result.
    """
    if repeats < 1 or warmup < 0:
        raise ConfigError(
            f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}"
        )
    x = _example_input(model, tuple(input_shape), dtype)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    restore = _eval_mode(model)
    times = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t0) * 1e3)
        used = torch.get_num_threads()
    finally:
        restore()
        torch.set_num_threads(before)
    q = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
    return LatencyMeasurement(
        statistics.median(times), q[0], q[-1], repeats, warmup, used, tuple(input_shape)
    )


def latency(
    input_shape: tuple[int, ...],
    batch: int | None = None,
    repeats: int = 30,
    warmup: int = 5,
    threads: int | None = None,
) -> Objective:
    """Median forward latency in ms (minimize) of the static (exported) model.

    Args:
        input_shape: one example's shape, or the full shape with batch when ``batch`` is None.
        batch: prepended to ``input_shape`` when given.
    """
    shape = (batch, *input_shape) if batch is not None else tuple(input_shape)
    obj = Objective("latency", "minimize", unit="ms")

    def fn(model: Any, arch: Any) -> float:
        m = measure_latency(_static(model, arch), shape, repeats, warmup, threads)
        obj.last = m  # the most recent measurement, for the curious (thread count, spread)
        return m.median_ms

    obj.fn = fn
    return obj


# ---- accuracy -----------------------------------------------------------------------------
def _batches(data: Any, batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(data, "val") and hasattr(data, "train"):  # a Dataset: validate on .val
        data = data.val
    if hasattr(data, "batches"):
        return data.batches(batch_size)
    if isinstance(data, tuple) and len(data) == 2:
        X, y = data
        return (
            (X[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size)
        )
    if isinstance(data, torch.utils.data.DataLoader):
        return data
    raise ConfigError(
        f"accuracy data must be a nasviz Dataset or Split, an (X, y) pair or a DataLoader; got {type(data).__name__}"
    )


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, data: Any, arch: Any = None, batch_size: int = 512
) -> float:
    """Top-1 accuracy in percent of ``model`` (or of subnet ``arch``) on ``data``."""
    restore = _eval_mode(model)
    correct = total = 0
    try:
        with _active(model, arch):
            for X, y in _batches(data, batch_size):
                out = model(X)
                logits = out.logits if hasattr(out, "logits") else out
                correct += int((logits.argmax(-1) == y).sum())
                total += len(y)
    finally:
        restore()
    if total == 0:
        raise ConfigError("accuracy data is empty")
    return 100.0 * correct / total


def accuracy(data: Any, batch_size: int = 512) -> Objective:
    """Top-1 accuracy in percent (maximize) on ``data`` (a Dataset uses its val split)."""

    def fn(model: Any, arch: Any) -> float:
        return evaluate_accuracy(model, data, arch, batch_size)

    return Objective("accuracy", "maximize", fn, unit="%")
