"""``nasviz worker``: joins a search defined elsewhere by module path, evaluates with it until
the shared budget is reached; bad input gives clear errors and exit code 2."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from search_helpers import OBJECTIVES, SPACE, WIDE, shared_fn

from nasviz.pipeline import main
from nasviz.search import Search


def test_a_worker_joins_a_search_and_the_notebook_sees_its_trials_live(tmp_path, helper):
    path = str(tmp_path / "joined.journal")
    search = Search(
        shared_fn, WIDE, objectives=OBJECTIVES, strategy="random", budget=30, storage=path, seed=0
    )
    events = []
    search.subscribe(lambda e: events.append(e.data) if e.kind == "result" else None)
    helper.send(job="cli", argv=["worker", "--storage", path, "--workers", "2"])  # stored function
    runner = threading.Thread(target=search.run)  # this process: the notebook's search
    runner.start()
    assert helper.wait_for("done") == "done 0", "".join(helper.log)
    runner.join(timeout=120)
    assert search.status.state == "finished", search.traceback
    assert any(line.startswith("nasviz worker: finished: 30/30") for line in helper.log)
    frame = search.results
    assert len(frame) == 30 and not frame[list(WIDE.names)].duplicated().any()
    worker = f"{socket.gethostname()}:{helper.proc.pid}"
    assert set(frame["searcher"]) == {worker, f"{socket.gethostname()}:{os.getpid()}"}
    assert {row["trial"] for row in events if row["searcher"] == worker} == set(
        frame.loc[frame["searcher"] == worker, "trial"]
    )  # every trial of the worker reached this search's listeners


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--objective", "search_helpers:nothing_here"], "has no 'nothing_here'"),
        (["--objective", "no_such_module:fn"], "cannot import the objective 'no_such_module:fn'"),
        (["--objective", "shared_fn"], "given as 'module:name'"),
        (
            ["--objective", "search_helpers:shared_fn", "--space", "search_helpers:WIDE"],
            "another space",
        ),
        (
            ["--objective", "search_helpers:shared_fn", "--space", "search_helpers:OBJECTIVES"],
            "must name a SearchSpace",
        ),
        (["--study", "other"], "has no study 'other'"),
        ([], "names no importable evaluation function"),
    ],
)
def test_bad_worker_input_says_what_to_do(argv, message, tmp_path, capsys):
    path = str(tmp_path / "s.journal")
    Search(lambda arch: shared_fn(arch), SPACE, objectives=OBJECTIVES, budget=2, storage=path)
    before = os.path.getsize(path)
    assert main(["worker", "--storage", path, *argv]) == 2
    assert message in capsys.readouterr().err
    assert os.path.getsize(path) == before  # nothing written


def test_a_worker_needs_a_shared_storage(capsys, tmp_path):
    assert main(["worker", "--storage", ":memory:"]) == 2
    assert "not ':memory:'" in capsys.readouterr().err
    assert main(["worker", "--storage", str(tmp_path / "absent.journal")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_worker_on_a_storage_of_several_studies_is_told_to_pass_study(capsys, tmp_path):
    path = str(tmp_path / "two.journal")
    for name in ("first", "second"):
        Search(shared_fn, SPACE, objectives=OBJECTIVES, storage=path, study_name=name)
    assert main(["worker", "--storage", path, "--objective", "search_helpers:shared_fn"]) == 2
    assert "holds 2 studies ['first', 'second']; pass study= (--study NAME) to choose one" in (
        capsys.readouterr().err
    )
