"""Persistence: storages, reloading, resuming, other spaces, and a search killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from search_helpers import OBJECTIVES, SPACE, small_nsga2_search, storage_for, two_objectives

from nasviz.errors import ConfigError, RunError, StorageError
from nasviz.search import Search
from nasviz.space import SearchSpace

HERE = Path(__file__).parent


@pytest.mark.parametrize("kind", ["journal", "url"])
def test_a_loaded_search_shows_the_same_results_and_resumes_without_repeats(kind, tmp_path):
    storage = storage_for(kind, tmp_path)
    search = small_nsga2_search(storage, budget=6)
    assert search.run().state == "finished"  # no timeout: SQLite is slow on a busy disk
    before = search.results

    browsed = Search.load(storage)
    assert browsed.space == SPACE and [o.name for o in browsed.objectives] == ["loss", "cost"]
    assert browsed.results.drop(columns=["note"]).equals(before.drop(columns=["note"]))
    assert browsed.results["note"].tolist() == before["note"].tolist()
    assert browsed.hypervolume() == pytest.approx(search.hypervolume())
    with pytest.raises(RunError, match="without its network or function"):
        browsed.start()

    resumed = Search.load(storage, two_objectives, budget=12)
    assert resumed.strategy.name == "nsga2" and resumed.status.done == 6
    assert resumed.strategy.population_size == 4  # stored settings come back
    assert resumed.start().wait().done == 12
    after = resumed.results
    assert len(after) == 12 and not after[list(SPACE.names)].duplicated().any()
    assert after.head(6).drop(columns=["note"]).equals(before.drop(columns=["note"]))


def test_default_storage_is_a_journal_file_under_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    search = Search(two_objectives, space=SPACE, objectives=OBJECTIVES, strategy="random", budget=3)
    search.start().wait(timeout=300)
    files = list((tmp_path / "runs").glob("*.journal"))
    assert len(files) == 1 and search.storage_name == str(files[0].relative_to(tmp_path))
    assert len(Search.load(files[0]).results) == 3


def test_storage_errors(tmp_path):
    kwargs = {"space": SPACE, "objectives": OBJECTIVES, "budget": 2}
    with pytest.raises(StorageError, match="does not exist"):
        Search(two_objectives, storage=str(tmp_path / "missing" / "s.journal"), **kwargs)
    with pytest.raises(StorageError, match="does not exist"):
        Search(two_objectives, storage=f"sqlite:///{tmp_path}/missing/s.db", **kwargs)
    with pytest.raises(StorageError, match="cannot tell what kind"):
        Search(two_objectives, storage=str(tmp_path / "s.txt"), **kwargs)
    with pytest.raises(StorageError, match="no stored search"):
        Search.load(tmp_path / "absent.journal")
    path = str(tmp_path / "s.journal")
    Search(two_objectives, storage=path, **kwargs)
    other = SearchSpace({"a": [0, 1], "b": [0, 1, 2, 3], "c": ["x", "y", "z"]})
    with pytest.raises(StorageError, match="another space"):
        Search(two_objectives, space=other, objectives=OBJECTIVES, storage=path)
    with pytest.raises(StorageError, match="objectives"):
        Search(
            two_objectives,
            space=SPACE,
            objectives=[("loss", "maximize"), ("cost", "minimize")],
            storage=path,
        )
    foreign = tmp_path / "foreign.journal"
    optuna.create_study(
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(foreign))
        ),
        study_name="x",
    )
    with pytest.raises(StorageError, match="not created by nasviz"):
        Search.load(foreign)


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    from search_helpers import OBJECTIVES, SPACE, hangs_after_eight, say
    from nasviz.search import Search

    search = Search(hangs_after_eight, space=SPACE, objectives=OBJECTIVES, strategy="random",
                    budget=40, storage={storage!r}, workers=3, seed=0)
    search.subscribe(lambda e: say("result", e.data["trial"]) if e.kind == "result" else None)
    search.start().wait()
    """
)


def test_a_search_killed_with_sigkill_loses_nothing_and_resumes(tmp_path):
    storage = str(tmp_path / "killed.journal")
    code = CHILD.format(here=str(HERE), storage=storage)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    reported, hanging = [], 0
    try:
        for line in child.stdout:  # 8 evaluations complete; later ones hang, their trials RUNNING
            if line.startswith("result"):
                reported.append(int(line.split()[1]))
            hanging += line.startswith("hang")
            if len(reported) == 8 and hanging:
                break
    finally:  # killed whatever happened above, so an error here is reported as itself
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert len(reported) == 8 and hanging >= 1

    loaded = Search.load(storage)
    before = loaded.results
    assert set(reported) == set(before["trial"])  # reported => persisted
    running = [t for t in loaded.study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    assert 1 <= len(running) <= 3  # the hanging evaluations (3 workers), killed mid-flight

    resumed = Search.load(storage, two_objectives, workers=2)
    assert resumed.start().wait(timeout=300).state == "finished", resumed.traceback
    frame = resumed.results
    assert len(frame) == 40 and not frame[list(SPACE.names)].duplicated().any()
    assert frame.head(len(before))["trial"].tolist() == before["trial"].tolist()
    states = {t.number: t for t in resumed.study.get_trials()}
    for t in running:  # left RUNNING by the kill: marked failed as interrupted, arch retried
        assert states[t.number].state == optuna.trial.TrialState.FAIL
        assert "interrupted" in states[t.number].user_attrs["nasviz:interrupted"]["error"]
        assert t.number not in set(frame["trial"])
        assert ((frame[list(SPACE.names)] == pd_row(t)).all(axis=1)).sum() == 1
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in resumed.study.get_trials())


def pd_row(trial):
    return [trial.params[n] for n in SPACE.names]


@pytest.mark.parametrize(("durability", "fsyncs"), [("process", False), ("os", True)])
def test_journal_durability_decides_whether_appends_are_fsynced(
    durability, fsyncs, tmp_path, monkeypatch
):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    storage = str(tmp_path / "d.journal")
    search = Search(
        two_objectives,
        space=SPACE,
        objectives=OBJECTIVES,
        strategy="random",
        budget=5,
        storage=storage,
        seed=0,
        durability=durability,
    )
    search.start().wait(timeout=300)
    assert bool(calls) is fsyncs
    assert (
        Search.load(storage)
        .results.drop(columns=["note"])
        .equals(search.results.drop(columns=["note"]))
    )  # what was written reads back the same either way


def test_unknown_durability_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="durability must be one of"):
        Search(
            two_objectives,
            space=SPACE,
            objectives=OBJECTIVES,
            storage=str(tmp_path / "x.journal"),
            durability="disk",
        )


def test_runs_folder_is_made_on_demand_but_no_other(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kwargs = {"space": SPACE, "objectives": OBJECTIVES, "budget": 2, "strategy": "random"}
    Search(two_objectives, storage="runs/cnn.journal", **kwargs).start().wait(timeout=300)
    assert (tmp_path / "runs" / "cnn.journal").is_file()
    with pytest.raises(StorageError, match="the folder .*elsewhere' does not exist"):
        Search(two_objectives, storage="elsewhere/cnn.journal", **kwargs)
    assert not (tmp_path / "elsewhere").exists()
