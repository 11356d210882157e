"""One study, several processes: on PostgreSQL, SQLite and a journal file, three processes (two
children and this one) that create the study at once (same seed, so they propose the same
archs in the same order) share a budget of 60: exactly 60 distinct archs complete, none twice,
although one child is killed with SIGKILL in the middle of an evaluation (its arch is retried
once, by another process)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import optuna
import pytest
from search_helpers import OBJECTIVES, WIDE, shared_fn

from nasviz.search import Search
from nasviz.search._storage import INTERRUPTED_KEY, kind

BUDGET = 60


def _storage(kind_: str, tmp_path: Path, postgres_server) -> str:
    if kind_ == "journal":
        return str(tmp_path / "shared.journal")
    if kind_ == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return postgres_server


@pytest.fixture(params=["postgresql", "sqlite", "journal"])
def shared_storage(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return _storage(request.param, tmp_path, None)


def test_three_processes_share_one_budget_and_survive_a_kill(
    shared_storage, tmp_path, helper, children
):
    """This process is the third: it sees the others' results live, as events and rows."""
    go = tmp_path / "go"
    victim = children.take()
    events = []
    try:
        helper.send(job="shared", storage=shared_storage, budget=BUDGET, go=str(go))
        victim.send(job="shared", storage=shared_storage, budget=BUDGET, go=str(go), hang_after=1)
        go.touch()  # all three create (or load) the study at once
        search = Search(
            shared_fn, WIDE, objectives=OBJECTIVES, strategy="random", budget=BUDGET,
            storage=shared_storage, seed=0,
        )  # fmt: skip
        # done before we looked (read after the search's own first read): rows, not events
        resumed = set(search.results["trial"])
        search.subscribe(lambda e: events.append(e.data) if e.kind == "result" else None)
        runner = threading.Thread(target=search.run)  # not start(): its idle priority would
        runner.start()  # let a busy machine starve it

        hung = victim.wait_for("hang").split()[1:]
        os.kill(victim.proc.pid, signal.SIGKILL)  # mid-evaluation: its trial stays RUNNING
        assert helper.wait_for("done").startswith("done finished"), "".join(helper.log)
        runner.join(timeout=300)
        assert search.status.state == "finished", search.traceback
    finally:
        victim.close()

    frame = search.results
    archs = frame[list(WIDE.names)].apply(tuple, axis=1)
    assert len(frame) == BUDGET and (frame["state"] == "COMPLETE").all()
    assert archs.nunique() == BUDGET  # exactly 60 distinct archs, none evaluated twice
    assert frame["searcher"].nunique() == 3  # every process evaluated some
    mine = f"{socket.gethostname()}:{os.getpid()}"
    others = [row for row in events if row["searcher"] != mine]
    seen = {row["trial"] for row in events}  # live: all but those done before we looked
    assert others and seen <= set(frame["trial"]) and set(frame["trial"]) - seen <= resumed

    trials = search.study.get_trials(deepcopy=False)
    assert {kind(t) for t in trials} <= {"result", "interrupted", "skipped"}  # none left RUNNING
    killed = [t for t in trials if kind(t) == "interrupted"]
    assert len(killed) == 1 and INTERRUPTED_KEY in killed[0].user_attrs
    arch = WIDE.validate(killed[0].params)
    assert [str(arch[n]) for n in WIDE.names] == hung
    retried = frame[archs == tuple(arch[n] for n in WIDE.names)]
    assert len(retried) == 1 and int(retried["trial"].iloc[0]) > killed[0].number  # once, later
    skipped = [t.user_attrs["nasviz"]["skipped"] for t in trials if kind(t) == "skipped"]
    assert set(skipped) <= {"duplicate", "budget"}  # same seed: the three proposed alike

    plain = optuna.load_study(
        study_name=search.study.study_name, storage=_optuna_view(shared_storage)
    )
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in plain.trials) == BUDGET


def _optuna_view(storage: str):
    """The storage as plain Optuna opens it (its own journal backend)."""
    if "://" in storage:
        return storage
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))


def test_a_search_waiting_for_anothers_last_evaluation_reads_soon_then_backs_off(
    tmp_path, monkeypatch
):
    """With the rest of the budget held by another search's running evaluation, a search
    sleeps 10 ms, then twice as long each time up to the poll interval, and ends once that
    evaluation is in (its result read from the study: both archs in its results)."""
    from types import SimpleNamespace

    from search_helpers import SPACE, two_objectives

    from nasviz.search import _engine

    storage, calls, lock = str(tmp_path / "wait.journal"), [], threading.Lock()
    holding, release = threading.Event(), threading.Event()

    def fn(arch):
        with lock:
            calls.append(arch)
            first = len(calls) == 1
        if first:  # the first search's evaluation runs until released
            holding.set()
            release.wait(60)
        return two_objectives(arch)

    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 8:
            release.set()
        time.sleep(seconds)

    fake = SimpleNamespace(sleep=sleep, monotonic=time.monotonic)
    holder = Search(fn, SPACE, objectives=OBJECTIVES, budget=2, storage=storage, seed=0).start()
    assert holding.wait(60)
    monkeypatch.setattr(_engine, "time", fake)  # (the holder sleeps in its evaluation only)
    waiter = Search(fn, SPACE, objectives=OBJECTIVES, budget=2, storage=storage, seed=1)
    assert waiter.run().state == "finished"
    assert holder.wait(60).state == "finished"
    assert sleeps[:8] == [0.01, 0.02, 0.04, 0.08, 0.16, 0.25, 0.25, 0.25]
    assert set(sleeps[8:]) <= {0.25}  # (until the released evaluation was written)
    assert len(waiter.results) == 2 and len(calls) == 2
