"""Evaluation workers run at background priority (nice and the idle scheduling class), so the
notebook stays responsive."""

from __future__ import annotations

import os
import threading

from nasviz import SearchSpace
from nasviz.runner import BACKGROUND_NICE
from nasviz.search import Search

SEEN: set[tuple[int, int]] = set()


def _probe(arch):
    SEEN.add((os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), os.sched_getscheduler(0)))
    return {"loss": float(arch["x"]), "cost": float(-arch["x"])}


def test_thread_pool_workers_are_background_priority():
    SEEN.clear()
    search = Search(
        _probe,
        space=SearchSpace({"x": list(range(12))}),
        objectives=[("loss", "minimize"), ("cost", "minimize")],
        strategy="random",
        budget=12,
        storage=":memory:",
        workers=3,
        seed=0,
    )
    assert search.start().wait(60).state == "finished"
    assert {(BACKGROUND_NICE, os.SCHED_IDLE)} == SEEN
