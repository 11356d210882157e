"""The per-thread subnet check every supernet-like class gets: threads evaluating different
archs at once (the first ones released together) each see their own subnet's outputs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch


def worst_thread_error(
    net: Any,
    x: torch.Tensor,
    archs: Sequence[Any],
    *,
    threads: int = 8,
    repeats: int = 3,
    output: Callable[[Any], torch.Tensor] = lambda out: out,
    after_exports: Callable[[], Any] | None = None,
) -> float:
    """The largest difference, over every thread and repeat, between ``net``'s output under
    ``with net.subnet(arch)`` and the export of ``arch`` (computed first, in this thread;
    ``after_exports`` then runs, e.g. to drop what exporting cached)."""
    with torch.no_grad():
        expected = [output(net.export(a)(x)) for a in archs]
    if after_exports is not None:
        after_exports()
    barrier = threading.Barrier(threads)

    def evaluate(i: int) -> float:
        if i < threads:
            barrier.wait()  # the first ones start together
        worst = 0.0
        for _ in range(repeats):
            with torch.no_grad(), net.subnet(archs[i]):
                worst = max(worst, float((output(net(x)) - expected[i]).abs().max()))
        return worst

    with ThreadPoolExecutor(threads) as pool:
        return max(pool.map(evaluate, range(len(archs))))
