"""The machine's speed right now: a fixed reference kernel, timed beside the measurements.

A shared machine (a cloud VM, a laptop changing its clock, a GPU beside other jobs) runs the
same forward 10-25% slower or faster from one minute to the next. Timing a fixed matrix product
of known size at each visit of an interleaved measurement says how fast the machine was at that
moment; dividing the visit's timings by it (and multiplying by the session's median) puts every
figure at the session's typical speed. The same kernel timed later says how much faster or
slower the machine is now than when a profile was measured
(:meth:`~nasviz.hardware.HardwareProfile.rescaled`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nasviz.hardware._runtime import synchronizer

__all__ = ["reference_kernel"]

_SIZE, _PRODUCTS, _TRIES = 128, 4, 3  # 4 products of 128x128 float32 matrices, fastest of 3


def reference_kernel(device: torch.device, clock: Callable[[], float]) -> Callable[[], float]:
    """A callable timing the reference kernel on ``device`` with ``clock`` (seconds): each call
    returns its milliseconds now (the fastest of a few tries, so one preemption does not count).

    Call it with torch's thread count set as for the measurement it accompanies.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(_SIZE, _SIZE, generator=generator).to(device)
    sync = synchronizer(device)

    def once() -> float:
        sync()
        t0 = clock()
        for _ in range(_PRODUCTS):
            a @ a
        sync()
        return (clock() - t0) * 1e3

    once()  # first-call costs (allocation, kernel selection) stay out

    def timed() -> float:
        return min(once() for _ in range(_TRIES))

    return timed
