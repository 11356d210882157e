"""Paired timing shared by the benchmarks: two calls alternate, so load that drifts during a
run hits both alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def alternate(
    a: Callable[[], object], b: Callable[[], object], rounds: int, inner: int = 1
) -> tuple[list[float], list[float], list[float]]:
    """Per round: ms per call of ``a`` and of ``b`` (the mean of ``inner`` calls) and their
    ratio a/b; the order is swapped every round. No warm-up, no autograd setting."""
    a_ms, b_ms, ratios = [], [], []
    for r in range(rounds):
        pair = {}
        for name, fn in (("a", a), ("b", b)) if r % 2 == 0 else (("b", b), ("a", a)):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            pair[name] = (time.perf_counter() - t0) * 1e3 / inner
        a_ms.append(pair["a"])
        b_ms.append(pair["b"])
        ratios.append(pair["a"] / pair["b"])
    return a_ms, b_ms, ratios


@torch.inference_mode()
def paired(
    a: Callable[[], object], b: Callable[[], object], rounds: int
) -> tuple[float, float, float]:
    """(a ms, b ms, median per-round a/b): one warm-up call each, then ``rounds`` rounds of one
    call each (:func:`alternate`); times are medians."""
    a(), b()  # warm-up
    return tuple(statistics.median(xs) for xs in alternate(a, b, rounds))  # type: ignore[return-value]
