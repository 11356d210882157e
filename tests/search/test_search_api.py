"""The Search API: keyword-only arguments (old positional calls warn), ``run()`` blocks, a
finished search run again shows its results, Optuna's log level is left alone, and bad input
raises nasviz errors before anything is created."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import optuna
import pytest
from search_helpers import OBJECTIVES, SPACE, two_objectives

from nasviz.errors import ConfigError, NasvizWarning, StorageError
from nasviz.objectives import Objective
from nasviz.search import Search


def test_only_net_or_fn_and_space_are_positional_and_old_calls_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Search(two_objectives, SPACE, objectives=OBJECTIVES, storage=":memory:")
    with pytest.warns(
        FutureWarning,
        match=r"Search: pass objectives=\.\.\., strategy=\.\.\., budget=\.\.\., storage=\.\.\. by keyword",
    ):
        old = Search(two_objectives, SPACE, OBJECTIVES, "random", 4, ":memory:")
    assert old.strategy.name == "random" and old.budget == 4 and old.run().done == 4
    with pytest.raises(ConfigError, match="both by position and by keyword"):
        Search(two_objectives, SPACE, OBJECTIVES, objectives=OBJECTIVES, storage=":memory:")
    with pytest.raises(ConfigError, match="at most 14 arguments by position"):
        Search(two_objectives, SPACE, *range(13))


def test_run_blocks_and_the_old_run_attribute_still_works_with_a_warning():
    search = Search(
        two_objectives,
        SPACE,
        objectives=OBJECTIVES,
        strategy="random",
        budget=5,
        storage=":memory:",
    )
    status = search.run()
    assert status.state == "finished" and status.done == 5 and len(search.results) == 5
    with pytest.warns(FutureWarning, match="search.run.engine is deprecated"):
        assert search.run.engine.finished()


def test_a_finished_search_run_again_shows_its_results(tmp_path, monkeypatch):
    """The same script run twice: the second run finishes at once and shows the results; a
    larger budget continues it."""
    monkeypatch.chdir(tmp_path)

    def script(budget: int) -> tuple[Search, list]:
        search = Search(
            two_objectives, SPACE, objectives=OBJECTIVES, strategy="nsga2", budget=budget,
            storage="runs/again.journal", seed=0,
        )  # fmt: skip
        seen = []
        search.subscribe(seen.append)
        return search, seen

    first, _ = script(6)
    assert first.run().state == "finished"
    again, seen = script(6)
    status = again.run()
    assert status.state == "finished" and status.done == 6
    assert "nothing left to run" in status.message and "larger budget" in str(status)
    assert [e.data.state for e in seen if e.kind == "status"] == ["finished"]
    assert again.results.equals(first.results) and len(again.study.trials) == 6
    assert again.start().wait(timeout=5).state == "finished"  # start() too, at once
    more, _ = script(9)
    assert more.run().done == 9 and len(more.results) == 9


def test_search_leaves_optunas_log_level_and_handlers_alone(tmp_path):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("optuna")
    logger.addHandler(handler)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        search = Search(
            two_objectives,
            SPACE,
            objectives=OBJECTIVES,
            strategy="random",
            budget=3,
            storage=str(tmp_path / "q.journal"),
        )
        search.run()
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
        assert not [r for r in records if "A new study created" in r.getMessage()]  # ours: quiet
        optuna.create_study(study_name="users-own")  # the user's own Optuna calls still log
        assert [r for r in records if "users-own" in r.getMessage()]
    finally:
        logger.removeHandler(handler)


def _bad(**kwargs) -> dict:
    return {"space": SPACE, "objectives": OBJECTIVES, **kwargs}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (_bad(seed=-1), ConfigError, r"seed must be an int >= 0, got -1"),
        (_bad(seed=2**32), ConfigError, r"seed must be an int in 0 \.\. 2\*\*32 - 1"),
        (_bad(seed=1.5), ConfigError, r"seed must be an int >= 0, got 1.5 \(float\)"),
        (_bad(budget=2.0), ConfigError, r"budget must be an int"),
        (_bad(workers=True), ConfigError, r"workers must be an int"),
        (_bad(heartbeat=0), ConfigError, r"heartbeat \(seconds\) must be > 0"),
        (_bad(pruner=3), ConfigError, r"pruner must be"),
        (_bad(durability="disk"), ConfigError, r"durability must be one of"),
        (_bad(study_name=""), ConfigError, r"study_name must be a non-empty string"),
        (
            _bad(objectives=[("loss", "minimize"), ("duration", "minimize")]),
            ConfigError,
            r"\['duration'\] name\(s\) a column Search.results keeps for itself",
        ),
        (
            _bad(space={"step": [1, 2], "b": [1, 2]}),
            ConfigError,
            r"\['step'\] name\(s\) a column .* \(reserved: \['trial', 'state'",
        ),
    ],
)
def test_bad_input_raises_before_any_file_is_created(kwargs, error, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for storage in (None, "runs/bad.journal", str(tmp_path / "bad.db")):
        with pytest.raises(error, match=match):
            Search(two_objectives, storage=storage, **kwargs)
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, no journal, no database


def test_numpy_integers_are_accepted_like_ints():
    search = Search(
        two_objectives, SPACE, objectives=OBJECTIVES, strategy="random", budget=np.int64(4),
        workers=np.int32(2), seed=np.int64(3), storage=":memory:",
    )  # fmt: skip
    assert search.budget == 4 and type(search.budget) is int
    assert search.run().done == 4


def test_a_string_is_not_a_number_and_fails_the_trial_clearly():
    def stringly(arch):
        return {"loss": "1.0", "cost": 2.0} if arch["a"] == 0 else two_objectives(arch)

    search = Search(
        stringly,
        SPACE,
        objectives=OBJECTIVES,
        strategy="random",
        budget=20,
        storage=":memory:",
        seed=0,
    )
    assert search.run().state == "finished"
    failed = search.results[search.results["state"] == "FAIL"]
    assert len(failed) and (failed["a"] == 0).all()
    assert all("objective 'loss' must be a number, got '1.0' (str)" in e for e in failed["error"])
    assert failed["loss"].map(math.isnan).all()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://nasviz:secret@127.0.0.1:1/nowhere",  # nothing listens on port 1
        "mysql+nosuchdriver://u:secret@127.0.0.1:1/x",
    ],
)
def test_an_unreachable_database_is_a_clear_storage_error(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match="cannot open") as info:
        Search(two_objectives, SPACE, objectives=OBJECTIVES, storage=url)
    assert "secret" not in str(info.value) and "***" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_loading_checks_the_space_and_creates_nothing(tmp_path):
    path = tmp_path / "s.journal"
    Search(two_objectives, SPACE, objectives=OBJECTIVES, budget=2, storage=str(path)).run()
    with pytest.raises(StorageError, match="another space"):
        Search.load(str(path), two_objectives, space={"a": [0, 1]})
    with pytest.raises(StorageError, match="no such file"):
        Search.load(str(tmp_path / "absent.journal"), two_objectives)
    assert not (tmp_path / "absent.journal").exists()


def test_a_cheap_objective_that_fails_on_its_own_is_reported_not_swallowed():
    def inverse(_, arch):
        return 1.0 / arch["a"]  # fails for the smallest arch (a == 0), the probe

    objectives = [("loss", "minimize"), Objective("inv", "minimize", inverse, cheap=True)]
    with pytest.warns(
        NasvizWarning,
        match=r"cheap objective 'inv' could not be computed on its own .*ZeroDivisionError",
    ):
        search = Search(
            lambda arch: {"loss": float(arch["b"])}, SPACE, objectives=objectives,
            strategy="predictor", budget=20, storage=":memory:", seed=0,
            strategy_options={"batch_size": 4, "inner_steps": 100, "inner_population": 8},
        )  # fmt: skip
    assert search.run().state == "finished", search.traceback
    frame = search.results
    assert set(frame.loc[frame["state"] == "FAIL", "a"]) <= {0}  # recorded where it fails
    assert (frame.loc[frame["a"] > 0, "state"] == "COMPLETE").all()
    assert {"inv_kendall_tau", "loss_kendall_tau"} <= set(search.cycles.columns)  # predicted
