"""``Search.study`` is an ordinary Optuna study: Optuna's own tools read it, on the live search
and reloaded from its storage by Optuna alone; plain Optuna samplers respect constraints."""

from __future__ import annotations

from datetime import datetime

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
from nasviz.search._optuna import study_id, trial_id


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
    assert search.run().state == "finished", search.traceback
    frame = search.results.set_index("trial")
    front = set(search.pareto()["trial"])
    assert not frame["feasible"].all()  # the constraint matters: some rows are infeasible

    assert {t.number for t in search.study.best_trials} == front  # feasible front, as ours
    table = search.study.trials_dataframe()
    done = table[table["state"] == "COMPLETE"].set_index("number")
    assert set(done.index) == set(frame.index)
    for name in SPACE.names:
        assert done[f"params_{name}"].tolist() == frame.loc[done.index, name].tolist()
    assert done["values_loss"].tolist() == frame.loc[done.index, "loss"].tolist()
    assert done["values_cost"].tolist() == frame.loc[done.index, "cost"].tolist()

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
    assert search.start().wait(timeout=300).state == "finished", search.traceback
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


@pytest.mark.parametrize("kind", ["journal", "url"])
def test_optuna_dashboard_and_plot_pareto_front_show_the_objective_names(kind, tmp_path):
    """optuna-dashboard's own API (its WSGI app, as its server runs it) and Optuna's Pareto plot
    read the study from storage alone and show "loss" and "cost", not "Objective 0"."""
    import io
    import json
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    path = storage_for(kind, tmp_path)
    small_nsga2_search(path, budget=6).run()
    storage = optuna_storage(kind, path)
    if isinstance(storage, str):
        storage = optuna.storages.RDBStorage(storage)
    study = optuna.load_study(study_name="nasviz-search", storage=storage)
    assert study.metric_names == ["loss", "cost"]

    app = wsgi(storage)
    environ = {"PATH_INFO": f"/api/studies/{study_id(study)}", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, headers, exc=None: status.append(s)))
    assert status == ["200 OK"]
    detail = json.loads(body)
    assert detail["objective_names"] == ["loss", "cost"] and len(detail["trials"]) == 6

    figure = optuna.visualization.plot_pareto_front(study)
    assert (figure.layout.xaxis.title.text, figure.layout.yaxis.title.text) == ("loss", "cost")


def _opened(kind: str, request, tmp_path) -> optuna.Study:
    """A fresh two-objective study on ``kind`` of storage, opened as Optuna opens it."""
    storage = {
        "memory": lambda: None,
        "journal": lambda: optuna_storage("journal", str(tmp_path / "c.journal")),
        "sqlite": lambda: f"sqlite:///{tmp_path / 'c.db'}",
        "postgresql": lambda: request.getfixturevalue("postgres_url"),
    }[kind]()
    return optuna.create_study(storage=storage, directions=["minimize", "minimize"])


def _template(x: int) -> optuna.trial.FrozenTrial:
    dists = {"x": optuna.distributions.CategoricalDistribution([1, 2, 3])}
    return optuna.trial.FrozenTrial(
        number=-1, state=optuna.trial.TrialState.RUNNING, value=None, values=None,
        datetime_start=datetime.now(), datetime_complete=None, params={"x": x},
        distributions=dists, user_attrs={}, system_attrs={"lease": {"owner": "me"}},
        intermediate_values={}, trial_id=-1,
    )  # fmt: skip


def _seen(t: optuna.trial.FrozenTrial) -> tuple:
    return (
        t.number, t.state, t.params, t.distributions, t.values, t.user_attrs, t.system_attrs,
        t.datetime_complete is not None,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["memory", "journal", "sqlite", "postgresql"])
def test_compat_writes_read_back_as_optunas_own_calls(kind, request, tmp_path):
    """``create_trial`` / ``finish_trial`` (nasviz's one-write paths) store what Optuna's own
    calls store; a finished trial refuses them untouched; a key another process wrote first
    is overwritten as Optuna would; the reader returns our created trials and others'."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from nasviz.search import _optuna

    study = optuna.create_study(directions=["minimize", "minimize"]) if kind == "memory" else None
    study = study or _opened(kind, request, tmp_path)
    storage, sid = _optuna.storage_of(study), _optuna.study_id(study)
    reader = _optuna.TrialReader(storage, sid)
    assert reader.poll(set()) == []

    ours = _optuna.create_trial(storage, sid, _template(2))
    own = {ours: _template(2)}
    own[ours].number = storage.get_trial_number_from_id(ours)
    theirs = storage.create_new_trial(sid, template_trial=_template(2))  # Optuna's own path
    assert _seen(storage.get_trial(ours))[1:] == _seen(storage.get_trial(theirs))[1:]
    assert [storage.get_trial(i).number for i in (ours, theirs)] == [0, 1]
    polled = reader.poll(set(), own)
    assert [(t.number, t.params) for t in polled] == [(0, {"x": 2}), (1, {"x": 2})]

    record, constraint = {"nasviz": {"duration": 0.5}}, {"constraints": [0.0]}
    _optuna.finish_trial(storage, ours, record, constraint, TrialState.COMPLETE, [1.0, 2.5])
    for key, value in record.items():
        storage.set_trial_user_attr(theirs, key, value)
    for key, value in constraint.items():
        storage.set_trial_system_attr(theirs, key, value)
    storage.set_trial_state_values(theirs, TrialState.COMPLETE, [1.0, 2.5])
    assert _seen(storage.get_trial(ours))[1:] == _seen(storage.get_trial(theirs))[1:]
    assert storage.get_trial(ours).values == [1.0, 2.5]
    assert {trial_id(t) for t in reader.poll({ours, theirs})} == {ours, theirs}

    before = _seen(storage.get_trial(ours))
    with pytest.raises(UpdateFinishedTrialError):
        _optuna.finish_trial(storage, ours, {"nasviz": 1}, {}, TrialState.FAIL, None)
    assert _seen(storage.get_trial(ours)) == before

    taken = _optuna.create_trial(storage, sid, _template(3))
    storage.set_trial_user_attr(taken, "nasviz", {"error": "reaped"})  # written meanwhile
    _optuna.finish_trial(storage, taken, record, {}, TrialState.COMPLETE, [0.0, 0.0])
    got = storage.get_trial(taken)
    assert (got.state, got.user_attrs, got.values) == (TrialState.COMPLETE, record, [0.0, 0.0])
    assert len(optuna.load_study(study_name=study.study_name, storage=storage).trials) == 3
    if kind in ("sqlite", "postgresql"):  # numbered from the latest trial's number...
        from optuna.storages._rdb import models
        from sqlalchemy import update

        trials = models.TrialModel.__table__
        with _optuna._rdb_session(_optuna.backend(storage)) as session:
            session.execute(update(trials).where(trials.c.trial_id == taken).values(number=None))
        counted = _optuna.create_trial(storage, sid, _template(1))  # ...or counted without one
        assert storage.get_trial(counted).number == 3


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


def test_rdb_look_ups_read_the_latest_trials_by_id_not_the_whole_study(postgres_url):
    """A trial's creation and the reader's poll read the study's trials by id range: the one
    index that can serve them is the primary key, and through it they visit only the rows
    they return. (Through the study_id index, which PostgreSQL's planner took while a fresh
    table had no statistics, every creation read every trial of the study. Sequential scans
    are turned off here: on a 300-row table the planner may read it whole, which at that
    size is as cheap; ``python -m bench search_scale`` shows the cost flat at 5,000.)"""
    from sqlalchemy import event

    from nasviz.search import _optuna

    study = optuna.create_study(storage=postgres_url, directions=["minimize", "minimize"])
    storage, sid = _optuna.storage_of(study), _optuna.study_id(study)
    reader = _optuna.TrialReader(storage, sid)
    for _ in range(300):
        _optuna.create_trial(storage, sid, _template(1))
    reader.poll(set())

    engine = _optuna.backend(storage).engine
    seen: list[tuple[str, dict]] = []
    record = lambda conn, cursor, sql, params, context, many: seen.append((sql, params))  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    try:
        ours = _optuna.create_trial(storage, sid, _template(2))
        reader.poll(set(), {ours: _template(2)})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert storage.get_trial(ours).number == 300

    reads = [(sql, p) for sql, p in seen if "FROM trials" in sql and "FOR UPDATE" not in sql]
    assert len(reads) == 2  # the creation's number and the poll's new ids
    with engine.raw_connection() as conn:
        cursor = conn.cursor()
        cursor.execute("SET enable_seqscan = off")  # a seq scan reads all rows anyway
        for sql, params in reads:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            ran = [n for n in _plan_nodes(cursor.fetchone()[0][0]["Plan"]) if n["Actual Loops"]]
            # (the count fallback's scans are never run)
            assert {n["Index Name"] for n in ran if "Index Name" in n} == {"trials_pkey"}, sql
            assert sum(n.get("Rows Removed by Filter", 0) for n in ran) == 0, sql
        conn.rollback()  # the EXPLAIN ANALYZE of the insert ran it


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_database_without_the_one_statement_insert_searches_through_optunas_creation(
    kind, request, tmp_path, monkeypatch
):
    """MySQL, or SQLite before 3.35 (no RETURNING), create trials with Optuna's own code;
    the engine reads their ids and numbers as from the fast path."""
    from search_helpers import small_nsga2_search

    from nasviz.search import _optuna

    monkeypatch.setattr(_optuna, "_one_statement_insert", lambda store: False)
    url = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'old.db'}",
        "postgresql": lambda: request.getfixturevalue("postgres_url"),
    }[kind]()
    search = small_nsga2_search(url, budget=8)
    assert search.run().state == "finished"
    trials = search.study.get_trials()
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert len(search.results) == 8 and not search.results[list(SPACE.names)].duplicated().any()
