"""Timing many modules fairly on a shared machine: interleaved rounds, medians, and optionally
every visit normalized by the machine's speed at that moment (see
:mod:`nasviz.hardware._reference`)."""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Interleaved", "measure_interleaved"]


@dataclass(frozen=True)
class Interleaved:
    """What :func:`measure_interleaved` measured.

    Attributes:
        times: key -> every timed forward (ms), normalized when asked.
        reference_ms: the session's median of the reference kernel (None: not normalized).
    """

    times: dict[Hashable, np.ndarray]
    reference_ms: float | None


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
    normalize: bool = False,
) -> Interleaved:
    """Times every ``(key, module, input shape)`` entry ``rounds`` times, each round in a new
    random order (so slow drifts of the machine spread evenly over the entries), ``warmup``
    untimed and ``repeats`` timed forwards per visit.

    With ``normalize``, each visit also times the reference kernel right before its forwards,
    and its forwards are scaled by (the session's median reference / that visit's): every
    figure is then at the session's typical speed of the machine, and a visit during a slow
    spell (another job, a lower clock) no longer counts as a slower model.

    All entries are prepared first (compiled, exported) and untimed; forwards run in eval mode
    without autograd with ``threads`` intra-op threads (torch's setting is restored after).
    """
    from nasviz.hardware._reference import reference_kernel
    from nasviz.hardware._runtime import prepare, time_calls
    from nasviz.objectives import _clock, _eval_mode, _example_input

    visits: list[tuple[Hashable, list[float], float]] = []  # key, timed forwards, reference
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
            reference = reference_kernel(device, _clock) if normalize else None
            for _ in range(rounds):
                for i in rng.permutation(len(runs)):
                    key, run = runs[i]
                    time_calls(run, 0, warmup, _clock)
                    speed = reference() if reference is not None else 1.0
                    visits.append((key, time_calls(run, repeats, 0, _clock), speed))
    finally:
        for restore in restores:
            restore()
        torch.set_num_threads(before)
    typical = float(np.median([speed for _, _, speed in visits])) if normalize else None
    timed: dict[Hashable, list[float]] = {key: [] for key, _, _ in entries}
    for key, values, speed in visits:
        timed[key] += [v * typical / speed for v in values] if typical is not None else values
    return Interleaved({key: np.asarray(v) for key, v in timed.items()}, typical)
