"""Evaluation functions and a tiny supernet-like object for the search tests.

Module-level (importable, picklable) so process executors (Dask workers) can run them.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time

from nasviz.objectives import Objective
from nasviz.space import SearchSpace

SPACE = SearchSpace({"a": [0, 1, 2, 3], "b": [0, 1, 2, 3], "c": ["x", "y", "z"]})
OBJECTIVES = [("loss", "minimize"), ("cost", "minimize")]
C = {"x": 0.0, "y": 0.5, "z": 1.0}


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
        print("hang", flush=True)
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
