"""``Search.study`` is an ordinary Optuna study: Optuna's own tools read it, on the live search
and reloaded from its storage by Optuna alone; plain Optuna samplers respect constraints."""

from __future__ import annotations

import optuna
import pytest
from search_helpers import (
    SPACE,
    TinySupernet,
    small_nsga2_search,
    storage_for,
    tiny_objectives,
)

from nasviz.search import Search


def optuna_storage(kind: str, path: str):
    """The same storage opened by Optuna alone (its own journal backend, or the RDB URL)."""
    if kind == "journal":
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    return path


@pytest.mark.parametrize("kind", ["journal", "url"])
def test_optunas_own_tools_read_the_study(kind, tmp_path):
    path = storage_for(kind, tmp_path)
    # the constraint is checked after evaluating: Optuna constraints on the trials
    search = small_nsga2_search(path, budget=12, constraints={"cost": 6.0})
    assert search.run.run().state == "finished", search.traceback
    frame = search.results.set_index("trial")
    front = set(search.pareto()["trial"])
    assert not frame["feasible"].all()  # the constraint matters: some rows are infeasible

    assert {t.number for t in search.study.best_trials} == front  # feasible front, as ours
    table = search.study.trials_dataframe()
    done = table[table["state"] == "COMPLETE"].set_index("number")
    assert set(done.index) == set(frame.index)
    for name in SPACE.names:
        assert done[f"params_{name}"].tolist() == frame.loc[done.index, name].tolist()
    assert done["values_0"].tolist() == frame.loc[done.index, "loss"].tolist()
    assert done["values_1"].tolist() == frame.loc[done.index, "cost"].tolist()

    study = optuna.load_study(
        study_name=search.study.study_name, storage=optuna_storage(kind, path)
    )
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE] * 2
    assert {t.number for t in study.best_trials} == front
    mine = {t.number: t for t in search.study.get_trials()}
    for t in study.get_trials():
        assert (t.state, t.params, t.values) == (
            mine[t.number].state,
            mine[t.number].params,
            mine[t.number].values,
        )
    assert len(study.trials) == len(mine)


def test_a_plain_optuna_sampler_respects_constraints():
    counter: list[int] = []
    net = TinySupernet()
    search = Search(
        net,
        objectives=tiny_objectives(counter),
        strategy=optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
        budget=15,
        storage=":memory:",
        seed=0,
        constraints=[{"size": 20.0, "acc": 70.0}, lambda arch: arch["c"] != "z"],
    )
    assert search.start().wait(timeout=60).state == "finished", search.traceback
    frame = search.results
    assert len(frame) == 15 and net.calls == 15  # nothing infeasible before evaluating ran
    assert (frame["size"] <= 20.0).all() and (frame["c"] != "z").all()
    assert (frame["feasible"] == (frame["acc"] >= 70.0)).all()  # checked after evaluating
    assert not frame["feasible"].all() and (search.pareto()["acc"] >= 70.0).all()
    skipped = [
        t
        for t in search.study.get_trials()
        if t.user_attrs.get("nasviz", {}).get("skipped") == "infeasible"
    ]
    assert skipped  # TPE did propose infeasible archs; they were pruned, never evaluated
    for t in skipped:
        arch = SPACE.validate(t.params)
        assert t.state == optuna.trial.TrialState.PRUNED
        assert arch["c"] == "z" or 4 ** arch["a"] + 2 * arch["b"] + 1 > 20.0
