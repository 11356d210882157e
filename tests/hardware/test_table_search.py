"""A latency table as a cheap objective: constraints on it reject archs before evaluation."""

from __future__ import annotations

import threading

import numpy as np

from nasviz.hardware import latency_table
from nasviz.objectives import Objective
from nasviz.search import Search


def _expensive(seen: list) -> Objective:
    """An expensive objective that records every arch it is asked to evaluate."""
    lock = threading.Lock()

    def fn(net, arch):
        with lock:
            seen.append(arch)
        return float(sum(v for v in arch.values()))

    return Objective("loss", "minimize", fn)


def test_a_bound_on_the_table_rejects_archs_before_any_evaluation(cnn_profile):
    net, profile = cnn_profile
    table = profile.table()
    predicted = table.predict_many(list(net.space))
    bound = float(np.quantile(predicted, 0.4))  # most archs are over it
    seen: list = []
    search = Search(
        net,
        objectives=[_expensive(seen), latency_table(profile)],
        strategy="random",
        budget=12,
        storage=":memory:",
        seed=0,
        constraints={"latency_table": bound},
    )
    search.start().wait()
    assert search.status.state == "finished", search.traceback
    assert seen and len(seen) == len(search.results)
    assert all(table.predict(a) <= bound for a in seen)  # none over the bound was evaluated
    results = search.results
    assert (results.latency_table <= bound).all() and results.feasible.all()
    np.testing.assert_allclose(results.latency_table, table.predict_many(results), rtol=1e-12)


def test_a_function_search_uses_the_table_without_a_supernet(cnn_profile):
    net, profile = cnn_profile
    table = profile.table()
    bound = float(np.median(table.predict_many(list(net.space))))
    seen: list = []

    def evaluate(arch):
        seen.append(arch)
        return {"loss": float(arch["depth.0"])}

    search = Search(
        evaluate,
        space=profile.search_space,
        objectives=[("loss", "minimize"), latency_table(profile)],
        strategy="random",
        budget=8,
        storage=":memory:",
        seed=1,
        constraints={"latency_table": bound},
    )
    search.start().wait()
    assert search.status.state == "finished", search.traceback
    assert len(seen) == 8 and all(table.predict(a) <= bound for a in seen)
