"""Multi-fidelity: functions that report as they train, successive halving and Hyperband for
several objectives, Optuna's pruners for one, and a search killed during halving resumes."""

from __future__ import annotations

import os
import signal

import numpy as np
import optuna
import pytest
import search_helpers
from search_helpers import OBJECTIVES, STEPS, WIDE, curve, trains

from nasviz.errors import ConfigError, RunError
from nasviz.objectives import as_objective
from nasviz.search import Hyperband, Search, SuccessiveHalving
from nasviz.search._fidelity import _position
from nasviz.search._storage import INTERRUPTED_KEY, kind


def _run(pruner, budget: int = 30, fn=trains, **kwargs) -> tuple[Search, int]:
    """A seeded random search of ``fn``; returns it and the steps its function ran."""
    search_helpers.STEPS_RUN.clear()
    search = Search(
        fn, WIDE, objectives=OBJECTIVES, strategy="random", budget=budget, storage=":memory:",
        seed=1, pruner=pruner, **kwargs,
    )  # fmt: skip
    assert search.run().state == "finished", search.traceback
    return search, len(search_helpers.STEPS_RUN)


def test_halving_evaluates_fewer_steps_than_full_fidelity_and_records_rungs():
    full, full_steps = _run(None)
    halving, steps = _run(SuccessiveHalving(min_step=1, eta=3, max_step=STEPS))
    assert full_steps == 30 * STEPS and steps < full_steps / 2
    frame = halving.results
    assert len(frame) == 30 and set(frame["state"]) == {"COMPLETE", "PRUNED"}
    assert frame["step"].sum() == steps  # the step column says how far each trial ran
    pruned = frame[frame["state"] == "PRUNED"]
    assert set(pruned["step"]) <= {1, 3, 9} and not pruned["feasible"].any()
    assert (pruned["rung"] == np.log(pruned["step"]) / np.log(3)).all()  # rung k at 3**k
    for row in pruned.itertuples():  # a pruned row holds its last reported values
        arch = {n: getattr(row, n) for n in WIDE.names}
        assert row.loss == curve(arch, int(row.step))["loss"]
    complete = frame[frame["state"] == "COMPLETE"]
    assert (complete["step"] == STEPS).all() and (complete["rung"] == 2).all()
    reports = halving.reports
    assert len(reports) == steps and list(reports.columns) == ["trial", "step", "loss", "cost"]
    assert full.results["rung"].isna().all() and (full.results["step"] == STEPS).all()
    assert len(halving.pareto()) and halving.hypervolume() > 0  # fronts from full fidelity


def test_hyperband_brackets_start_at_different_steps():
    hyperband = Hyperband(min_step=1, eta=3, max_step=STEPS)
    search, steps = _run(hyperband, budget=40)
    assert steps < 40 * STEPS
    brackets = {hyperband.bracket(n) for n in search.results["trial"]}
    assert brackets == {0, 1, 2, 3}
    frame = search.results.assign(bracket=[hyperband.bracket(n) for n in search.results["trial"]])
    first_stop = frame[frame["state"] == "PRUNED"].groupby("bracket")["step"].min()
    for bracket, step in first_stop.items():  # no trial stops before its bracket's first rung
        assert step >= 3**bracket


def test_ranking_at_a_rung_is_non_dominated_rank_then_hypervolume_contribution():
    directions = ["minimize", "minimize"]
    front = np.array([[0.0, 10.0], [4.9, 5.1], [5.0, 5.0], [10.0, 0.0], [6.0, 6.0]])
    order = [_position(front, directions, i) for i in range(len(front))]
    assert order[4] == 4  # dominated: last
    assert sorted(order[:4]) == [0, 1, 2, 3] and max(order[1], order[2]) == 3  # crowded: later
    halving = SuccessiveHalving(min_step=1, eta=2, max_step=8)
    halving.bind([as_objective(o) for o in OBJECTIVES], None)
    arch = [WIDE.sample(np.random.default_rng(i)) for i in range(3)]
    assert halving.decide(arch[0], 0, 0, 1, [5.0, 5.0]) == (False, 0)  # alone: the best
    assert halving.decide(arch[1], 1, 1, 1, [6.0, 6.0]) == (True, 0)  # dominated, n // 2 = 1
    assert halving.decide(arch[2], 2, 2, 1, [4.0, 4.0]) == (False, 0)  # dominates both


def test_an_optuna_pruner_stops_a_one_objective_search():
    def one(arch, report):
        for step in range(1, 10):
            search_helpers.STEPS_RUN.append(step)
            report(step, {"loss": curve(arch, step)["loss"]})
        return {"loss": curve(arch, 9)["loss"]}

    search_helpers.STEPS_RUN.clear()
    search = Search(
        one, WIDE, objectives=[("loss", "minimize")], strategy="random", budget=20,
        storage=":memory:", seed=0,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )  # fmt: skip
    assert search.run().state == "finished", search.traceback
    assert (search.results["state"] == "PRUNED").any() and len(search_helpers.STEPS_RUN) < 180
    trial = search.study.get_trials()[0]
    assert trial.intermediate_values == {s: curve(trial.params, s)["loss"] for s in range(1, 10)}


def test_bad_pruners_and_bad_reports():
    base = {"space": WIDE, "objectives": OBJECTIVES, "storage": ":memory:"}
    with pytest.raises(ConfigError, match="ranks one objective"):
        Search(trains, pruner=optuna.pruners.MedianPruner(), **base)
    with pytest.raises(ConfigError, match="takes \\(arch, report\\)"):
        Search(search_helpers.shared_fn, pruner="halving", **base)
    with pytest.raises(ConfigError, match="pruner must be"):
        Search(trains, pruner="asha", **base)
    with pytest.raises(ConfigError, match="max_step must be >= min_step"):
        SuccessiveHalving(min_step=4, max_step=2)
    with pytest.raises(TypeError):  # keyword-only, as every new public signature
        SuccessiveHalving(1, 3, 9)

    kept = []

    def bad(arch, report):
        kept.append(report)
        if arch["a"] % 2:
            report(1, {"loss": "1.0", "cost": 1.0})  # a string is not a number
        report(2, {"loss": 1.0, "cost": 1.0})
        report(2, {"loss": 1.0, "cost": 1.0})  # steps must increase
        return {"loss": 1.0, "cost": 1.0}

    search = Search(bad, strategy="random", budget=6, seed=0, **base)
    assert search.run().state == "failed" and "all 6 evaluations failed" in str(search.error)
    errors = search.results.set_index("a")["error"]
    assert all("steps must increase" in e for a, e in errors.items() if a % 2 == 0)
    assert all("'loss' must be a number, got '1.0'" in e for a, e in errors.items() if a % 2)
    with pytest.raises(RunError, match="after trial .* ended"):
        kept[0](3, {"loss": 1.0, "cost": 1.0})


def test_a_search_killed_during_halving_resumes_with_its_partial_reports(tmp_path, children):
    path = str(tmp_path / "halving.journal")
    child = children.take()
    try:
        child.send(job="halving", storage=path, budget=24, hang_after=6)
        hung = child.wait_for("hang").split()[1:]  # 6 trials, then 4 reported steps of the 7th
        os.kill(child.proc.pid, signal.SIGKILL)
        child.proc.wait(timeout=30)
    finally:
        child.close()
    before = Search.load(path)
    running = [t for t in before.study.get_trials() if kind(t) == "claim"]
    assert len(running) == 1 and sorted(
        before.reports.query(f"trial == {running[0].number}")["step"]
    ) == [1, 2, 3, 4]

    resumed = Search.load(path, trains)  # strategy, budget, seed and pruner from the storage
    assert isinstance(resumed.scheduler, SuccessiveHalving) and resumed.scheduler.max_step == STEPS
    entries = len(resumed.scheduler._rungs[0, 0])
    assert entries >= 7  # the rungs hold every stored report, the killed trial's too
    assert resumed.run().state == "finished", resumed.traceback
    frame = resumed.results
    assert len(frame) == 24 and not frame[list(WIDE.names)].duplicated().any()
    killed = resumed.study.get_trials()[running[0].number]
    assert kind(killed) == "interrupted" and INTERRUPTED_KEY in killed.user_attrs
    again = frame[(frame[list(WIDE.names)].astype(str) == hung).all(axis=1)]
    assert len(again) == 1 and int(again["trial"].iloc[0]) > killed.number  # retried once
    assert (frame["state"] == "PRUNED").any()
