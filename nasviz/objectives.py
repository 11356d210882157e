"""Objectives: named, directed measurements of a model (or of one subnet of a supernet).

An :class:`Objective` is a callable ``objective(model, arch=None) -> float`` with a ``name`` and
a ``direction`` (``"minimize"`` or ``"maximize"``). With an ``arch``, ``model`` must be a supernet
(it has ``subnet(arch)`` and ``export(arch)``) and the objective measures that subnet.

Built-ins: :func:`params`, :func:`macs` (torch's own FLOP counter), :func:`latency` (median of
timed runs after warm-up, thread count recorded), and the quality objectives on data of any form
(defined in ``nasviz/_quality.py``): :func:`accuracy`, :func:`top_k_accuracy`,
:func:`perplexity`, :func:`mse`, :func:`f1` and :func:`metric` for anything else. ``cheap`` marks exact,
inexpensive objectives (params, MACs) that a predictor-guided search computes instead of
predicting. A supernet that has ``count_params(arch)`` / ``count_macs(arch, input_shape)`` gives
those counts in closed form; the objectives use them instead of exporting the subnet.

Built-ins check their arguments when they are built, so a bad ``input_shape`` fails at once, not
on every trial; a forward pass that fails on the example input raises :class:`ShapeError`.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasviz._flops import flop_counter
from nasviz.errors import ConfigError, ShapeError, check_int, check_shape
from nasviz.training._model import active_subnet as _active
from nasviz.training._model import as_module as _module
from nasviz.training._model import eval_mode as _eval_mode
from nasviz.training._model import is_supernet as _is_supernet

__all__ = [
    "DIRECTIONS",
    "LatencyMeasurement",
    "Objective",
    "accuracy",
    "as_objective",
    "count_macs",
    "count_params",
    "evaluate_accuracy",
    "f1",
    "latency",
    "macs",
    "measure_latency",
    "metric",
    "mse",
    "params",
    "perplexity",
    "top_k_accuracy",
]

DIRECTIONS = ("minimize", "maximize")

_clock = time.perf_counter  # the timer measure_latency reads (a module attribute tests can drive)


class Objective:
    """A named, directed measurement.

    Args:
        name: column name in results tables.
        direction: ``"minimize"`` or ``"maximize"``.
        fn: ``fn(model, arch) -> float``; None for objectives whose values come from a user
            function's returned dict (``Search(fn, objectives=[("loss", "minimize")])``).
        cheap: exact and inexpensive (no need to predict it).
        unit: for axis labels ("", "%", "ms", "MMACs", ...).
        needs_model: ``fn`` measures a model (nasviz's built-ins do): in a function search it
            measures the model the function returns; otherwise it is computed as
            ``fn(None, arch)``.

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
        needs_model: bool = False,
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
        self.needs_model = bool(needs_model)

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
        return self.as_number(self.fn(model, arch))

    def as_number(self, value: Any) -> float:
        """``value`` as a float, or a ConfigError naming this objective and what it got.

        Numbers, numpy scalars and one-element tensors pass (NaN too: it marks a failed value).
        """
        if not isinstance(value, str | bytes):  # float("1.5") works, but a string is a bug
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                return float(value)
        raise ConfigError(
            f"objective {self.name!r} must be a number, got {value!r} ({type(value).__name__}); "
            "return an int, a float or a one-element tensor"
        )

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
def _static(model: Any, arch: Any) -> nn.Module:
    """The standalone module for ``arch`` (the model itself without one)."""
    if arch is None:
        return _module(model)
    if not _is_supernet(model):
        raise ConfigError(f"an arch was given but {type(model).__name__} is not a supernet")
    return model.export(arch)


@contextlib.contextmanager
def _forward_errors(shape: tuple[int, ...]) -> Iterator[None]:
    """Turns a forward pass failing on an input of ``shape`` into a ShapeError."""
    try:
        yield
    except (RuntimeError, IndexError) as exc:
        raise ShapeError(f"forward pass on an input of shape {shape} failed: {exc}") from exc


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
    or uses ``model.count_params(arch)`` when the supernet has that fast path. An exported
    subnet is a fresh, fully trainable module, so ``trainable_only`` only matters without an arch."""

    def fn(model: Any, arch: Any) -> float:
        if arch is not None and hasattr(model, "count_params"):
            return float(model.count_params(arch))
        return float(count_params(_static(model, arch), trainable_only))

    return Objective("params", "minimize", fn, cheap=True, needs_model=True)


# ---- MACs ---------------------------------------------------------------------------------
def count_macs(
    model: nn.Module,
    input_shape: tuple[int, ...],
    arch: Any = None,
    dtype: torch.dtype | None = None,
) -> int:
    """Multiply-accumulates of one forward pass on an input of ``input_shape`` (batch included),
    counted by :class:`torch.utils.flop_counter.FlopCounterMode` (MACs = FLOPs / 2).

    Counts matrix multiplications and convolutions (what dominates), attention's two matrix
    products included on every device (see :mod:`nasviz._flops`); element-wise ops are free.
    For a supernet and an ``arch``, a supernet's own ``count_macs(arch, input_shape)`` (closed
    form, equal to counting its export) is used when it has one; ``dtype`` does not change a
    count.
    """
    shape = check_shape("input_shape (batch included)", input_shape)
    if arch is None and hasattr(model, "active_arch"):  # a supernet: its active subnet's count
        arch = model.active_arch  # (its forward could re-calibrate BN, which is not counted)
    if arch is not None and hasattr(model, "count_macs"):
        return int(model.count_macs(arch, shape))
    x = _example_input(_module(model), shape, dtype)
    restore = _eval_mode(model)
    counter = flop_counter()
    try:
        with torch.no_grad(), _active(model, arch), counter, _forward_errors(shape):
            model(x)
    finally:
        restore()
    return counter.get_total_flops() // 2


def macs(input_shape: tuple[int, ...], dtype: torch.dtype | None = None) -> Objective:
    """Multiply-accumulates of one forward pass (minimize); see :func:`count_macs`.

    ``input_shape`` includes the batch; it is checked here (ShapeError), not on every call.
    """
    shape = check_shape("input_shape (batch included)", input_shape)

    def fn(model: Any, arch: Any) -> float:
        return float(count_macs(model, shape, arch, dtype))

    return Objective("macs", "minimize", fn, cheap=True, needs_model=True)


# ---- latency ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyMeasurement:
    """Timed forward passes: median and spread in milliseconds, and how they were taken.

    ``threads`` is the intra-op thread count the forwards ran with (torch's for eager and
    compile, the ONNX Runtime session's for onnxruntime); ``runtime`` and ``device`` say where.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    warmup: int
    threads: int
    input_shape: tuple[int, ...]
    samples_ms: tuple[float, ...] = ()
    runtime: str = "eager"
    device: str = "cpu"

    @classmethod
    def of(cls, times: list[float], **how: Any) -> LatencyMeasurement:
        """Median, 10th and 90th percentiles of ``times`` (ms) with how they were taken."""
        q = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
        return cls(statistics.median(times), q[0], q[-1], samples_ms=tuple(times), **how)


def _check_timing(repeats: Any, warmup: Any, threads: Any) -> None:
    """ConfigError unless repeats >= 1, warmup >= 0 and threads is None or >= 1 (all ints)."""
    check_int("repeats", repeats, 1)
    check_int("warmup", warmup, 0)
    if threads is not None:
        check_int("threads (torch intra-op threads, or None for the current setting)", threads, 1)


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    repeats: int = 30,
    warmup: int = 5,
    threads: int | None = None,
    dtype: torch.dtype | None = None,
    *,
    runtime: str = "eager",
    device: str | torch.device | None = None,
) -> LatencyMeasurement:
    """Times ``repeats`` forward passes after ``warmup`` untimed ones, in eval mode, no grad.

    Args:
        input_shape: the full input shape, batch included.
        threads: intra-op threads during the measurement (torch's setting is restored after);
            None keeps the current setting. The count used is recorded in the result.
        dtype: of the example input (None: the model's, token ids for an embedding first).
        runtime: ``"eager"``, ``"compile"`` (``torch.compile``) or ``"onnxruntime"`` (the
            model exported to ONNX; the ``deploy`` extra); see :mod:`nasviz.hardware._runtime`.
            Compiling and exporting happen before the warm-up and are not timed.
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``); None: the
            model's device. A model elsewhere is copied there, never moved. CUDA forwards are
            synchronized before the clock stops.
    """
    from nasviz.hardware._runtime import check_runtime, prepare, resolve_device, time_calls

    shape = check_shape("input_shape (batch included)", input_shape)
    _check_timing(repeats, warmup, threads)
    runtime = check_runtime(runtime)
    module = _module(model)
    where = resolve_device(device, module)
    x = _example_input(module, shape, dtype)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    restore = _eval_mode(module)
    try:
        used = torch.get_num_threads()
        with (
            torch.no_grad(),
            prepare(module, x, runtime, where, used) as run,  # raises its own nasviz errors
            _forward_errors(shape),
        ):
            times = time_calls(run, repeats, warmup, _clock)
    finally:
        restore()
        torch.set_num_threads(before)
    return LatencyMeasurement.of(
        times,
        repeats=repeats,
        warmup=warmup,
        threads=used,
        input_shape=shape,
        runtime=runtime,
        device=str(where),
    )


def latency(
    input_shape: tuple[int, ...],
    batch: int | None = None,
    repeats: int = 30,
    warmup: int = 5,
    threads: int | None = None,
    *,
    runtime: str = "eager",
    device: str | torch.device | None = None,
) -> Objective:
    """Median forward latency in ms (minimize) of the static (exported) model.

    Args:
        input_shape: one example's shape, or the full shape with batch when ``batch`` is None.
        batch: prepended to ``input_shape`` when given.
        runtime: ``"eager"``, ``"compile"`` or ``"onnxruntime"`` (see :func:`measure_latency`).
        device: where to measure (None: the model's device).

    Every argument is checked here (ShapeError / ConfigError; an unknown or uninstalled
    runtime names the runtimes installed), not on every call.
    """
    from nasviz.hardware._runtime import check_runtime, resolve_device

    if batch is None:
        shape = check_shape("input_shape (batch included, as batch=None)", input_shape)
    else:
        batch = check_int("batch", batch, 1)
        shape = (batch, *check_shape("input_shape (one example, without batch)", input_shape))
    _check_timing(repeats, warmup, threads)
    check_runtime(runtime)
    if device is not None:
        resolve_device(device)
    obj = Objective("latency", "minimize", unit="ms", needs_model=True)

    def fn(model: Any, arch: Any) -> float:
        m = measure_latency(
            _static(model, arch), shape, repeats, warmup, threads, runtime=runtime, device=device
        )
        obj.last = m  # the most recent measurement, for the curious (thread count, spread)
        return m.median_ms

    obj.fn = fn
    return obj


# ---- quality on data (re-exported; they build on Objective above) ---------------------------
from nasviz._quality import (  # noqa: E402
    accuracy,
    evaluate_accuracy,
    f1,
    metric,
    mse,
    perplexity,
    top_k_accuracy,
)
