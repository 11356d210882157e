"""Latency over batch sizes, sequence lengths and runtimes, as one DataFrame."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from nasviz.errors import ConfigError, check_int, check_shape
from nasviz.hardware._runtime import check_runtime
from nasviz.objectives import _static, measure_latency

__all__ = ["latency_sweep"]

COLUMNS = [
    "runtime",
    "batch",
    "length",
    "input_shape",
    "median_ms",
    "p10_ms",
    "p90_ms",
    "ms_per_example",
    "examples_per_s",
    "threads",
    "device",
]


def _values(name: str, values: Any) -> list[int]:
    if isinstance(values, int) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ConfigError(f"{name} must be an int or a non-empty list of ints, got {values!r}")
    return [check_int(f"each of {name}", v, 1) for v in values]


def latency_sweep(
    model: Any,
    example_shape: Sequence[int],
    *,
    arch: Any = None,
    batches: int | Sequence[int] = (1,),
    lengths: int | Sequence[int] | None = None,
    length_axis: int = 0,
    runtimes: str | Sequence[str] = ("eager",),
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = 1,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Measures ``model`` (or subnet ``arch`` of a supernet) for every batch size, sequence
    length and runtime asked, one :func:`~nasviz.objectives.measure_latency` each.

    Args:
        example_shape: one example's shape, without the batch (``(1, 8, 8)``, ``(T,)``).
        arch: a supernet's subnet to measure (its export); None measures ``model`` itself.
        batches: batch sizes.
        lengths: sequence lengths, replacing ``example_shape[length_axis]``; None keeps it.
        runtimes: ``"eager"``, ``"compile"``, ``"onnxruntime"`` (one or several).
        repeats, warmup, threads, device: as in :func:`~nasviz.objectives.measure_latency`.

    Returns:
        One row per (batch, length, runtime), in that order, runtimes interleaved for each
        shape: ``runtime``, ``batch``, ``length`` (NaN when not swept), ``input_shape``,
        ``median_ms``, ``p10_ms``, ``p90_ms``, ``ms_per_example``, ``examples_per_s``,
        ``threads``, ``device``.
    """
    example = check_shape("example_shape (one example, without batch)", example_shape)
    sizes = _values("batches", batches)
    lens = None if lengths is None else _values("lengths", lengths)
    check_int("length_axis", length_axis, 0)
    if lens is not None and length_axis >= len(example):
        raise ConfigError(
            f"length_axis {length_axis} is not an axis of example_shape {example} "
            f"(0..{len(example) - 1})"
        )
    names = [runtimes] if isinstance(runtimes, str) else list(runtimes)
    if not names:
        raise ConfigError("runtimes must name at least one runtime")
    for runtime in names:
        check_runtime(runtime)  # all of them before anything is measured
    module = _static(model, arch)
    rows = []
    for batch, length in itertools.product(sizes, lens or [None]):
        shape = list(example)
        if length is not None:
            shape[length_axis] = length
        for runtime in names:
            m = measure_latency(
                module,
                (batch, *shape),
                repeats,
                warmup,
                threads,
                runtime=runtime,
                device=device,
            )
            rows.append(
                {
                    "runtime": runtime,
                    "batch": batch,
                    "length": float("nan") if length is None else length,
                    "input_shape": m.input_shape,
                    "median_ms": m.median_ms,
                    "p10_ms": m.p10_ms,
                    "p90_ms": m.p90_ms,
                    "ms_per_example": m.median_ms / batch,
                    "examples_per_s": 1e3 * batch / m.median_ms,
                    "threads": m.threads,
                    "device": m.device,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)
