"""Small searches for widget tests (plain functions, in-memory storage)."""

from __future__ import annotations

import threading

import numpy as np

from nasviz import SearchSpace
from nasviz.search import Search

SPACE = SearchSpace({f"x{i}": list(range(6)) for i in range(3)})


def two_objectives(arch):
    v = np.array([arch[k] for k in arch], dtype=float) / 5
    return {"loss": float(v.mean()), "cost": float(1 - np.sqrt(v[0]) + v[1:].var())}


def three_objectives(arch):
    out = two_objectives(arch)
    out["size"] = float(arch["x2"])
    return out


def gated(fn=three_objectives):
    """An evaluation function that waits until ``gate.set()``: returns (gate, function)."""
    gate = threading.Event()

    def wait_then(arch):
        gate.wait(10)
        return fn(arch)

    return gate, wait_then


def failing_sometimes(arch):
    if arch["x0"] == 0:
        raise ValueError("x0 = 0 is broken")
    return two_objectives(arch)


def make_search(fn=two_objectives, budget=30, n_obj=2, seed=0, **kwargs):
    objectives = [("loss", "minimize"), ("cost", "minimize"), ("size", "maximize")][:n_obj]
    return Search(
        fn,
        space=SPACE,
        objectives=objectives,
        strategy=kwargs.pop("strategy", "random"),
        budget=budget,
        storage=":memory:",
        seed=seed,
        **kwargs,
    )
