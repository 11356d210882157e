"""Evaluation functions and a tiny supernet-like object for the search tests.

Module-level (importable, picklable) so process executors (Dask workers) can run them.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import time

from nasviz.objectives import Objective
from nasviz.space import SearchSpace

SPACE = SearchSpace({"a": [0, 1, 2, 3], "b": [0, 1, 2, 3], "c": ["x", "y", "z"]})
OBJECTIVES = [("loss", "minimize"), ("cost", "minimize")]
C = {"x": 0.0, "y": 0.5, "z": 1.0}


def say(*parts: object) -> None:
    """Prints one line in a single write: ``print`` writes the text and its newline separately,
    so lines printed by several threads at once (a hanging evaluation, a result event) could
    interleave into a line the parent cannot read."""
    sys.stdout.write(" ".join(map(str, parts)) + "\n")
    sys.stdout.flush()


def storage_for(kind: str, tmp_path) -> str:
    """A journal file or an SQLite URL in ``tmp_path``."""
    return {"journal": str(tmp_path / "s.journal"), "url": f"sqlite:///{tmp_path / 'u.db'}"}[kind]


def small_nsga2_search(storage: str, budget: int, **options):
    """A seeded NSGA-II search of ``two_objectives`` over ``SPACE`` (population 4)."""
    from nasviz.search import Search

    return Search(
        two_objectives,
        space=SPACE,
        objectives=OBJECTIVES,
        strategy="nsga2",
        budget=budget,
        storage=storage,
        seed=0,
        strategy_options={"population_size": 4},
        **options,
    )


def two_objectives(arch) -> dict[str, float]:
    """A small trade-off: loss falls and cost rises with a and b."""
    a, b, c = arch["a"], arch["b"], C[arch["c"]]
    return {"loss": (3 - a) + 0.5 * (3 - b) + c, "cost": a * a + b + 0.25 * c, "note": f"a{a}"}


def slow_two_objectives(arch) -> dict[str, float]:
    time.sleep(0.02)
    return two_objectives(arch)


_CALLS = itertools.count(1)


def hangs_after_eight(arch) -> dict[str, float]:
    """``slow_two_objectives`` for the first 8 calls in this process; later calls print
    ``"hang"`` and never return in practice (their trials stay RUNNING until the process dies)."""
    if next(_CALLS) > 8:  # itertools.count: atomic under the GIL
        say("hang")
        time.sleep(3600)
    return slow_two_objectives(arch)


def sometimes_fails(arch) -> dict[str, float]:
    """Raises for a == 0, returns NaN for a == 1, else works."""
    if arch["a"] == 0:
        raise ZeroDivisionError("a is zero")
    if arch["a"] == 1:
        return {"loss": math.nan, "cost": 1.0}
    return two_objectives(arch)


def always_fails(arch) -> dict[str, float]:
    raise RuntimeError(f"broken evaluation for {arch['a']}")


class TinySupernet:
    """Follows the supernet protocol (space, subnet, export) without torch; counts calls."""

    def __init__(self):
        self.space = SPACE
        self.active = None
        self.calls = 0

    @contextlib.contextmanager
    def subnet(self, arch):
        self.active = arch
        try:
            yield self
        finally:
            self.active = None

    def export(self, arch):
        return dict(arch)


def tiny_objectives(counter: list[int]) -> list[Objective]:
    """accuracy-like (maximize, expensive) and size (minimize, cheap, counts its calls)."""

    def acc(net, arch):
        with net.subnet(arch):
            net.calls += 1
            return 50 + 10 * arch["a"] + 5 * arch["b"] - 3 * C[arch["c"]]

    def size(net, arch):
        counter.append(1)
        return float(4 ** arch["a"] + 2 * arch["b"] + 1)

    return [Objective("acc", "maximize", acc), Objective("size", "minimize", size, cheap=True)]


# ---- several processes on one study ---------------------------------------------------------
#: 8 * 8 * 3 = 192 archs: room for a budget of 60 from several processes.
WIDE = SearchSpace({"a": list(range(8)), "b": list(range(8)), "c": ["x", "y", "z"]})
#: In a child process: after this many evaluations, ``shared_fn`` and ``trains`` hang (0: never).
HANG_AFTER = 0
_SHARED_CALLS = itertools.count(1)


def hang_now() -> bool:
    return bool(HANG_AFTER) and next(_SHARED_CALLS) > HANG_AFTER


def shared_fn(arch) -> dict[str, float]:
    """A quick evaluation for shared-study tests. Past ``HANG_AFTER`` calls it prints
    ``hang <a> <b> <c>`` and never returns (its trial stays RUNNING until the process dies)."""
    if hang_now():
        say("hang", arch["a"], arch["b"], arch["c"])
        time.sleep(3600)
    time.sleep(0.05)  # a child started with the others gets its share when busy
    a, b, c = arch["a"], arch["b"], C[arch["c"]]
    return {"loss": (7 - a) + 0.5 * (7 - b) + c, "cost": a * a + b + 0.25 * c}


# ---- multi-fidelity -----------------------------------------------------------------------
STEPS = 27  # full fidelity: rungs at 1, 3, 9 (eta 3), no decision at 27


def curve(arch, step: int) -> dict[str, float]:
    """A training curve: loss falls towards the arch's final loss as steps grow; cost is fixed.
    Rankings at early steps are those of the end (as halving assumes), with noise-free ties."""
    a, b, c = arch["a"], arch["b"], C[arch["c"]]
    loss = (7 - a) + 0.5 * (7 - b) + c
    return {"loss": loss + 8.0 / step, "cost": a * a + b + 0.25 * c}


STEPS_RUN: list[int] = []  # steps run in this process (one entry per step)


def trains(arch, report) -> dict[str, float]:
    """Reports ``curve`` at each of ``STEPS`` steps (counting them in ``STEPS_RUN``), then
    returns the last values. Past ``HANG_AFTER`` calls it reports 4 steps, prints
    ``hang <trial arch>`` and never returns."""
    hang = hang_now()
    for step in range(1, STEPS + 1):
        STEPS_RUN.append(step)
        report(step, curve(arch, step))
        if hang and step == 4:
            say("hang", arch["a"], arch["b"], arch["c"])
            time.sleep(3600)
    return curve(arch, STEPS)
