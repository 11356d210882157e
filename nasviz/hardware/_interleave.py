"""Timing many modules fairly on a shared machine: interleaved rounds, medians."""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["measure_interleaved"]


def measure_interleaved(
    entries: Sequence[tuple[Hashable, nn.Module, tuple[int, ...]]],
    *,
    runtime: str,
    device: torch.device,
    threads: int,
    repeats: int,
    warmup: int,
    rounds: int,
    seed: int = 0,
) -> dict[Hashable, np.ndarray]:
    """Times every ``(key, module, input shape)`` entry ``rounds`` times, each round in a new
    random order (so slow drifts of the machine spread evenly over the entries), ``warmup``
    untimed and ``repeats`` timed forwards per visit; returns key -> every timed forward (ms).

    All entries are prepared first (compiled, exported) and untimed; forwards run in eval mode
    without autograd with ``threads`` intra-op threads (torch's setting is restored after).
    """
    from nasviz.hardware._runtime import prepare, time_calls
    from nasviz.objectives import _clock, _eval_mode, _example_input

    timed: dict[Hashable, list[float]] = {key: [] for key, _, _ in entries}
    rng = np.random.default_rng(seed)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    restores = [_eval_mode(module) for _, module, _ in entries]
    try:
        with torch.no_grad(), contextlib.ExitStack() as stack:
            runs: list[tuple[Hashable, Any]] = [
                (
                    key,
                    stack.enter_context(
                        prepare(
                            module, _example_input(module, shape, None), runtime, device, threads
                        )
                    ),
                )
                for key, module, shape in entries
            ]
            for _ in range(rounds):
                for i in rng.permutation(len(runs)):
                    key, run = runs[i]
                    timed[key] += time_calls(run, repeats, warmup, _clock)
    finally:
        for restore in restores:
            restore()
        torch.set_num_threads(before)
    return {key: np.asarray(values) for key, values in timed.items()}
