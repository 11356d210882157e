"""Search on plain functions and on a supernet-like object: results, events, strategies,
determinism, failures, constraints and bad input."""

from __future__ import annotations

import threading

import numpy as np
import optuna
import pytest
from search_helpers import (
    OBJECTIVES,
    SPACE,
    TinySupernet,
    always_fails,
    slow_two_objectives,
    sometimes_fails,
    tiny_objectives,
    two_objectives,
)

from nasviz.errors import ConfigError, RunError
from nasviz.search import Search, pareto_mask, strategy_names

STRATEGIES = ["random", "nsga2", "predictor"]
OPTIONS = {
    "random": {},
    "nsga2": {"population_size": 6},
    "predictor": {"batch_size": 4, "inner_steps": 400, "inner_population": 20},
}


def make(strategy="random", budget=12, fn=two_objectives, **kw):
    kw.setdefault("storage", ":memory:")
    kw.setdefault("seed", 0)
    return Search(
        fn,
        space=SPACE,
        objectives=OBJECTIVES,
        strategy=strategy,
        budget=budget,
        strategy_options=OPTIONS.get(strategy) if isinstance(strategy, str) else None,
        **kw,
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_reaches_its_budget_without_repeating_an_arch(strategy):
    search = make(strategy, budget=30)
    events = []
    search.subscribe(events.append)
    assert search.start() is search
    status = search.wait(timeout=300)
    assert status.state == "finished" and status.done == 30, (status, search.traceback)
    frame = search.results
    assert len(frame) == 30
    assert not frame[list(SPACE.names)].duplicated().any()
    assert (frame["state"] == "COMPLETE").all()
    rows = [e.data for e in events if e.kind == "result"]
    assert [r["trial"] for r in rows] == frame["trial"].tolist()
    assert rows[0]["note"] == frame.loc[0, "note"]  # extra keys become columns
    for name in ("loss", "cost"):
        expected = [two_objectives({d: r[d] for d in SPACE.names})[name] for r in rows]
        assert frame[name].tolist() == pytest.approx(expected)
    assert [e.data.state for e in events if e.kind == "status"][-1] == "finished"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_one_worker_gives_identical_results(strategy):
    runs = []
    for _ in range(2):
        search = make(strategy, budget=16, seed=3)
        search.start().wait(timeout=300)
        runs.append(search.results.drop(columns=["duration", "worker"]))
    assert runs[0].equals(runs[1])
    other = make(strategy, budget=16, seed=4)
    other.start().wait(timeout=300)
    assert not other.results.drop(columns=["duration", "worker"]).equals(runs[0])


def test_pareto_and_hypervolume_follow_the_results():
    search = make("random", budget=20)
    search.start().wait(timeout=300)
    frame = search.results
    values = frame[["loss", "cost"]].to_numpy()
    assert (
        search.pareto()["trial"].tolist()
        == frame["trial"][pareto_mask(values, ["minimize", "minimize"])].tolist()
    )
    history = search.hypervolume_history()
    assert len(history) == 20 and np.all(np.diff(history["hypervolume"]) >= 0)
    assert history["hypervolume"].iloc[-1] == pytest.approx(search.hypervolume())
    ref = search.reference_point()
    assert np.all(ref >= values.max(axis=0))


def test_small_space_is_exhausted_and_the_search_finishes():
    search = make("nsga2", budget=SPACE.size + 10)
    assert search.start().wait(timeout=300).state == "finished"
    assert len(search.results) == SPACE.size
    assert not search.results[list(SPACE.names)].duplicated().any()


def test_failures_become_rows_and_the_search_goes_on():
    search = make("random", budget=20, fn=sometimes_fails)
    assert search.start().wait(timeout=300).state == "finished"
    frame = search.results
    failed = frame[frame["state"] == "FAIL"]
    assert set(failed["a"]) == {0, 1} and (frame[frame["state"] == "COMPLETE"]["a"] >= 2).all()
    raised = failed[failed["a"] == 0].iloc[0]
    assert "ZeroDivisionError: a is zero" in raised["error"] and "Traceback" in raised["traceback"]
    assert "NaN" in failed[failed["a"] == 1].iloc[0]["error"]
    assert failed["loss"].isna().all()
    assert search.status.failed == len(failed)


def test_a_search_where_everything_fails_ends_failed_with_the_first_error():
    search = make("random", budget=30, fn=always_fails)
    status = search.start().wait(timeout=300)
    assert status.state == "failed"
    assert isinstance(search.error, RunError)
    first = search.results.iloc[0]
    assert first["error"] in str(search.error) and "broken evaluation" in str(search.error)
    assert (search.results["state"] == "FAIL").all()


def test_constraints_are_respected_by_every_strategy():
    def small_a(arch):
        return arch["a"] <= 2

    for strategy in STRATEGIES:
        search = make(strategy, budget=15, constraints=[small_a, {"cost": 4.0}])
        search.start().wait(timeout=300)
        frame = search.results
        assert (frame["a"] <= 2).all(), strategy
        # cost is not cheap here: it is checked after evaluating and marks rows infeasible
        assert (frame["feasible"] == (frame["cost"] <= 4.0)).all()
        assert (search.pareto()["cost"] <= 4.0).all()


def test_supernet_objectives_and_cheap_bounds_checked_before_evaluating():
    counter: list[int] = []
    net = TinySupernet()
    search = Search(
        net,
        objectives=tiny_objectives(counter),
        strategy="predictor",
        budget=20,
        storage=":memory:",
        seed=1,
        constraints={"size": 20.0},
        strategy_options={"batch_size": 4, "inner_steps": 200, "cheap_samples": 16},
    )
    assert search.space == SPACE
    assert search.start().wait(timeout=300).state == "finished", search.traceback
    frame = search.results
    assert (frame["size"] <= 20.0).all() and frame["feasible"].all()
    assert net.calls == len(frame)  # the expensive objective ran once per evaluated arch
    cycles = search.cycles
    assert len(cycles) >= 2 and {"acc_kendall_tau", "acc_mape"} <= set(cycles.columns)
    assert "size_kendall_tau" not in cycles.columns  # cheap objectives are never predicted
    assert (np.diff(cycles["trained_on"]) > 0).all()
    assert "size_predicted" not in cycles.columns
    truth = dict(zip(frame["trial"], frame["acc"], strict=True))
    for row in cycles.itertuples():
        predicted, measured = row.acc_predicted, row.acc_measured
        assert isinstance(predicted, list) and len(predicted) == len(measured) == row.held_out
        assert all(isinstance(v, float) for v in predicted + measured)
        assert set(measured) <= set(truth.values())  # real measurements of evaluated archs
        if len(measured) >= 2 and row.acc_kendall_tau is not None:  # same order as the tau
            from scipy.stats import kendalltau

            assert kendalltau(predicted, measured).statistic == pytest.approx(row.acc_kendall_tau)
        mape = np.mean(np.abs(np.subtract(predicted, measured)) / np.abs(measured)) * 100
        assert mape == pytest.approx(row.acc_mape)


def test_any_optuna_sampler_is_a_strategy():
    search = make(optuna.samplers.TPESampler(seed=0, n_startup_trials=5), budget=12)
    assert search.strategy.name == "sampler"
    assert search.start().wait(timeout=300).state == "finished"
    assert len(search.results) == 12 and isinstance(
        search.study.sampler, optuna.samplers.TPESampler
    )


def test_pause_resume_and_stop_from_another_thread():
    gate = threading.Event()
    seen = []

    def listener(event):
        if event.kind == "result":
            seen.append(event.data["trial"])
            if len(seen) == 3:
                gate.set()

    search = make("random", budget=40, fn=slow_two_objectives)
    search.subscribe(listener)
    search.start()
    assert gate.wait(30)
    search.pause()
    paused_at = search.status.done
    assert search.status.state == "paused"
    search.resume()
    stopped = search.stop()
    assert stopped.state == "stopped" and paused_at <= stopped.done < 40
    assert len(search.results) == stopped.done  # in-flight work was persisted
    assert search.start().wait(timeout=300).done == 40
    assert not search.results[list(SPACE.names)].duplicated().any()


def test_workers_run_evaluations_in_parallel_threads():
    search = make("random", budget=12, fn=slow_two_objectives, workers=4)
    assert search.start().wait(timeout=300).state == "finished"
    assert search.results["worker"].nunique() > 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "bayes"}, r"unknown strategy 'bayes'.*\['nsga2', 'predictor', 'random'\]"),
        ({"budget": 0}, "budget must be an int >= 1"),
        ({"objectives": ["loss"]}, "has no direction"),
        ({"objectives": [("loss", "down")]}, "direction must be one of"),
        ({"workers": 0}, "workers must be"),
        ({"constraints": {"speed": 1.0}}, "not an objective"),
        ({"strategy": "nsga2", "strategy_options": {"population_size": 1}}, "population_size"),
        (
            {"strategy": "predictor", "strategy_options": {"feature": []}},
            r"strategy 'predictor' has no option 'feature' \(did you mean 'features'\?\)",
        ),
    ],
)
def test_bad_input_is_a_config_error(kwargs, match):
    base = {"space": SPACE, "objectives": OBJECTIVES, "storage": ":memory:"}
    with pytest.raises(ConfigError, match=match):
        Search(two_objectives, **{**base, **kwargs})


def test_a_registered_factory_taking_any_keyword_gets_the_options(monkeypatch):
    from nasviz.search import _strategy

    got = {}

    def factory(**options):
        got.update(options)
        return _strategy._REGISTRY["random"]()

    monkeypatch.setitem(_strategy._REGISTRY, "mine", factory)
    Search(two_objectives, SPACE, objectives=OBJECTIVES, storage=":memory:", strategy="mine",
           strategy_options={"anything": 1})  # fmt: skip
    assert got == {"anything": 1}


def test_registry_lists_the_strategies():
    assert {"random", "nsga2", "predictor"} <= set(strategy_names())


def test_vectorized_encoding_matches_the_space():
    from nasviz.search._predictor import _Encoder

    archs = [SPACE.sample(np.random.default_rng(i)) for i in range(20)]
    idx = np.array([SPACE.index_of(a) for a in archs])
    assert np.array_equal(_Encoder(SPACE)(idx), SPACE.encode_many(archs))
