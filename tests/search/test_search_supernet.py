"""Searching a real supernet: evaluations run concurrently in threads (no lock) and give exactly
the values one worker gives; the net is evaluated in eval mode; ``Search.net``."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from nasviz.data import digits
from nasviz.objectives import Objective, accuracy, macs, params
from nasviz.search import Search
from nasviz.supernet import ElasticCNN, ElasticMLP


class Probe:
    """An objective that holds its subnet active across a pause (so other threads' forward
    passes interleave with it), checks that its two passes agree, and records how many
    evaluations were in flight at once."""

    def __init__(self, X: torch.Tensor):
        self.X = X
        self._lock = threading.Lock()
        self.now = self.peak = 0
        self.modes: set[bool] = set()

    def __call__(self, net, arch) -> float:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.modes.add(net.training)
        try:
            with torch.no_grad(), net.subnet(arch):
                first = net(self.X).double()  # (B, 10)
                time.sleep(0.003)
                second = net(self.X).double()
            if not torch.equal(first, second):
                raise AssertionError(f"two passes of {dict(arch)} differ")
            return float(first.sum())
        finally:
            with self._lock:
                self.now -= 1


def small_cnn() -> ElasticCNN:
    torch.manual_seed(0)
    return ElasticCNN(
        stem_channels=8,
        stage_channels=(8, 12),
        strides=(2, 2),
        kernels=(3, 5),
        expands=(2, 3),
        depths=(1, 2),
    )  # 64 subnets, batch norm in every block


@pytest.fixture
def one_torch_thread():
    """Python threads give the concurrency here; torch's own intra-op threads on top of them
    only oversubscribe the (small, shared) machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_threads_evaluate_a_supernet_concurrently_with_the_values_of_one_worker(one_torch_thread):
    data = digits(seed=0)
    results = {}
    for workers in (1, 4):
        net = small_cnn()
        net.calibration_inputs = data.train.X[:64]  # BN re-calibrated per arch, concurrently
        net.train()  # a search must not evaluate in train mode nor race on the mode switch
        probe = Probe(data.val.X[:32])
        objectives = [
            accuracy((data.val.X[:120], data.val.y[:120])),
            macs((1, 1, 8, 8)),
            params(),
            Objective("logit_sum", "maximize", probe),
        ]
        search = Search(
            net,
            objectives=objectives,
            strategy="random",
            budget=net.space.size,
            storage=":memory:",
            workers=workers,
            seed=0,
        )
        assert search.net is net
        assert search.start().wait(timeout=300).state == "finished", search.traceback
        assert net.training  # the net's mode is restored when the search ends
        assert probe.modes == {False}
        frame = search.results
        assert (frame["state"] == "COMPLETE").all() and len(frame) == net.space.size
        if workers > 1:
            assert probe.peak > 1 and frame["worker"].nunique() > 1  # really concurrent
        key = frame[list(net.space.names)].apply(tuple, axis=1)
        results[workers] = frame.set_index(key)[[o.name for o in objectives]].sort_index()
    one, four = results[1], results[4]
    assert one.index.equals(four.index)
    assert np.array_equal(one.to_numpy(), four.to_numpy())  # exactly, not approximately
    assert one["accuracy"].nunique() > 1 and one["logit_sum"].nunique() == len(one)


def test_search_net_is_none_for_a_function():
    search = Search(
        lambda arch: {"loss": float(arch["x"])},
        space={"x": [0, 1, 2]},
        objectives=[("loss", "minimize")],
        storage=":memory:",
        budget=2,
    )
    assert search.net is None


def test_a_loaded_supernet_search_keeps_its_net(tmp_path):
    net = small_cnn()
    storage = str(tmp_path / "cnn.journal")
    objectives = [macs((1, 1, 8, 8)), params()]
    search = Search(net, objectives=objectives, strategy="random", budget=4, storage=storage)
    search.start().wait(timeout=300)
    again = Search.load(storage, net, objectives=objectives, workers=2)
    assert again.net is net and Search.load(storage).net is None


@pytest.mark.parametrize("strategy", ["random", "nsga2", "predictor"])
def test_a_real_elastic_mlp_search_evaluates_each_subnet_once(strategy, one_torch_thread):
    """Archs that differ only in the widths of layers past the depth are one subnet (same
    ``net.canonical``): whatever a strategy proposes, each subnet is evaluated once."""
    torch.manual_seed(0)
    net = ElasticMLP(64, 10, widths=(8, 16), depths=(1, 2, 3))  # 24 archs, 2 + 4 + 8 subnets
    subnets = {net.canonical(a) for a in net.space}
    data = digits(seed=0, flat=True)
    evaluated = []

    def recorded_accuracy(net, arch) -> float:
        evaluated.append(arch)
        return accuracy((data.val.X[:64], data.val.y[:64]))(net, arch)

    search = Search(
        net,
        objectives=[Objective("accuracy", "maximize", recorded_accuracy), params()],
        strategy=strategy,
        budget=net.space.size,
        storage=":memory:",
        seed=0,
        strategy_options={
            "random": {},
            "nsga2": {"population_size": 4},
            "predictor": {"batch_size": 3, "inner_steps": 100, "inner_population": 8},
        }[strategy],
    )
    assert search.run().state == "finished", search.traceback
    assert len(subnets) == 14 < net.space.size
    assert len(evaluated) == len(set(evaluated)) == 14  # once per subnet, then exhausted
    assert {net.canonical(a) for a in evaluated} == subnets == set(evaluated)
    frame = search.results
    stored = [net.space.validate(r) for r in frame[list(net.space.names)].to_dict("records")]
    assert stored == evaluated and frame["accuracy"].notna().all()
    if strategy != "predictor":  # proposals are canonical: no duplicate is ever stored
        assert len(search.study.trials) == len(frame)


def test_supernet_evaluations_compute_at_most_one_per_core_and_functions_are_not_capped(
    monkeypatch, one_torch_thread
):
    """Workers beyond the compute slots (one per CPU core) keep evaluations in flight but
    wait for a slot; a plain function (maybe I/O-bound) runs on every worker at once."""
    import nasviz.search._evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "COMPUTE_SLOTS", threading.BoundedSemaphore(2))
    lock = threading.Lock()
    now = peak = 0

    def counted(net, arch) -> float:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.05)
        with lock:
            now -= 1
        return float(arch["depth.0"])

    net = small_cnn()
    objectives = [Objective("counted", "minimize", counted), params()]
    search = Search(
        net, objectives=objectives, strategy="random", budget=8, storage=":memory:", workers=4
    )
    assert search.start().wait(timeout=300).state == "finished", search.traceback
    assert (search.results["state"] == "COMPLETE").all()
    assert peak == 2  # never more than the slots, and the slots are used

    together = threading.Barrier(4, timeout=20)  # passes only if all 4 run at once

    def waits_for_all(arch) -> dict[str, float]:
        together.wait()
        return {"loss": float(arch["x"]), "cost": -float(arch["x"])}

    search = Search(
        waits_for_all,
        space={"x": [0, 1, 2, 3]},
        objectives=[("loss", "minimize"), ("cost", "minimize")],
        strategy="random",
        budget=4,
        storage=":memory:",
        workers=4,
    )
    assert search.start().wait(timeout=300).state == "finished", search.traceback
    assert (search.results["state"] == "COMPLETE").all()
