"""Paired timing shared by the benchmarks: two calls alternate, so load that drifts during a
run hits both alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


@torch.inference_mode()
def paired(
    a: Callable[[], object], b: Callable[[], object], rounds: int
) -> tuple[float, float, float]:
    """(a ms, b ms, median per-round a/b): one warm-up call each, then ``rounds`` rounds of one
    call each, the order swapped every round; times are medians."""
    a(), b()  # warm-up
    a_ms, b_ms, ratios = [], [], []
    for r in range(rounds):
        pair = {}
        for name, fn in (("a", a), ("b", b)) if r % 2 == 0 else (("b", b), ("a", a)):
            t0 = time.perf_counter()
            fn()
            pair[name] = (time.perf_counter() - t0) * 1e3
        a_ms.append(pair["a"])
        b_ms.append(pair["b"])
        ratios.append(pair["a"] / pair["b"])
    return statistics.median(a_ms), statistics.median(b_ms), statistics.median(ratios)
