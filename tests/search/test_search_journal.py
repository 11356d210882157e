"""Journal files: a lock a dead process cannot leave held (nor Optuna's dangling symlink lock),
torn last records set aside, never made unreadable, browsing never writes, and files that are
no journal give a StorageError."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
from pathlib import Path

import optuna
import pytest
from search_helpers import OBJECTIVES, SPACE, two_objectives

import nasviz.search._journal as journal_module
from nasviz.errors import NasvizWarning, StorageError
from nasviz.search import Search
from nasviz.search._journal import JournalFile
from nasviz.search._storage import kind


def _search(storage, budget: int, **kwargs) -> Search:
    return Search(
        two_objectives,
        SPACE,
        objectives=OBJECTIVES,
        strategy="random",
        budget=budget,
        storage=storage,
        seed=0,
        **kwargs,
    )


def _optuna_journal(path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


# ---- the lock ---------------------------------------------------------------------------------
def test_a_lock_held_by_a_live_process_fails_clearly_and_a_killed_holder_never_blocks(
    tmp_path, children
):
    path = tmp_path / "locked.journal"
    assert _search(str(path), 2).run().state == "finished"
    holder = children.take()
    try:
        holder.send(job="lock", journal=str(path))
        holder.wait_for("locked")
        with pytest.raises(StorageError) as info:  # a writer waits 30 s by default
            JournalFile(path, lock_timeout=0.3)  # opening to write takes the lock once
        message = str(info.value)
        assert f"process {holder.proc.pid} on {socket.gethostname()}" in message
        assert f"kill -CONT {holder.proc.pid}" in message and f"kill {holder.proc.pid}" in message
        os.kill(holder.proc.pid, signal.SIGKILL)  # dies holding the lock
        holder.proc.wait(timeout=30)
    finally:
        holder.close()
    resumed = Search.load(str(path), two_objectives, budget=5)
    assert resumed.run().state == "finished"  # the kernel released the dead holder's lock
    assert len(Search.load(str(path)).results) == 5


def test_optunas_dangling_relative_symlink_lock_does_not_hang_a_run(tmp_path, monkeypatch):
    """Optuna's symlink lock made from a relative path (``runs/x.journal.lock ->
    runs/x.journal``, which resolves to runs/runs/x.journal) left by a killed process: every
    later Optuna writer waits for ever on it; nasviz removes it and runs."""
    monkeypatch.chdir(tmp_path)
    assert _search("runs/x.journal", 2).run().state == "finished"
    lock = Path("runs/x.journal.lock")
    os.symlink("runs/x.journal", lock)  # exactly as Optuna makes it
    assert lock.is_symlink() and not lock.exists()  # dangling
    os.utime(lock, (1, 1), follow_symlinks=False)  # left behind long ago
    assert _search("runs/x.journal", 4).run().state == "finished"
    assert not lock.is_symlink()

    done = threading.Event()

    def optuna_writes() -> None:  # plain Optuna, its own symlink lock: no longer stuck either
        study = optuna.load_study(
            study_name="nasviz-search", storage=_optuna_journal(lock.parent / "x.journal")
        )
        study.set_user_attr("written_by", "optuna")
        done.set()

    threading.Thread(target=optuna_writes, daemon=True).start()
    assert done.wait(60)
    assert Search.load("runs/x.journal").study.user_attrs["written_by"] == "optuna"


# ---- torn records -----------------------------------------------------------------------------
def _complete_trials(data: bytes) -> set[int]:
    """Trials with a COMPLETE state record among the complete lines of ``data`` (one study:
    trial ids are trial numbers)."""
    done = set()
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        log = json.loads(line)
        if log["op_code"] == 6 and log["state"] == optuna.trial.TrialState.COMPLETE:
            done.add(log["trial_id"])
    return done


@pytest.fixture
def written(tmp_path) -> bytes:
    path = tmp_path / "whole.journal"
    assert _search(str(path), 6).run().state == "finished"
    return path.read_bytes()


def test_a_journal_cut_at_every_byte_of_its_last_records_keeps_every_complete_trial(
    written, tmp_path, monkeypatch
):
    monkeypatch.setattr(journal_module, "SETTLE_S", 0.0)  # no concurrent writer here
    lines = written.splitlines(keepends=True)
    start = len(written) - sum(map(len, lines[-2:]))  # the last trial's state and the one before
    copy = tmp_path / "cut.journal"
    survived = set()
    for cut in range(start, len(written) + 1):
        data = written[:cut]
        copy.write_bytes(data)
        torn = len(data) - (data.rfind(b"\n") + 1)
        warns = pytest.warns(NasvizWarning, match=rf"torn record \({torn} bytes")
        with warns if torn else contextlib.nullcontext():
            browsed = Search.load(str(copy))
        expected = _complete_trials(data)
        kept = {t.number for t in browsed.study.get_trials() if kind(t) == "result"}
        assert kept == expected, cut
        if cut % 50 == 0:  # the table a user sees, now and then (building it is the slow part)
            assert set(browsed.results["trial"]) == expected
        assert copy.read_bytes() == data  # browsing never writes, torn or not
        survived |= expected
    assert len(survived) == 6


@pytest.mark.parametrize("back", [1, 17, 60])
def test_a_search_resuming_a_torn_journal_sets_the_torn_bytes_aside(written, tmp_path, back):
    path = tmp_path / "torn.journal"
    data = written[:-back]  # a crash in the middle of the last record
    path.write_bytes(data)
    before = _complete_trials(data)
    torn = data[data.rfind(b"\n") + 1 :]
    with pytest.warns(NasvizWarning, match=rf"torn record \({len(torn)} bytes"):
        resumed = Search.load(str(path), two_objectives, budget=len(before) + 2)
    assert resumed.run().state == "finished"
    (aside,) = tmp_path.glob("torn.journal.torn-*")
    assert aside.read_bytes() == torn  # exactly the torn bytes
    study = optuna.load_study(study_name="nasviz-search", storage=_optuna_journal(path))
    complete = {t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert before < complete and len(complete) == len(before) + 2  # nothing lost, readable


def test_browsing_a_healthy_storage_never_writes(tmp_path):
    for storage in (tmp_path / "b.journal", tmp_path / "b.db"):
        assert _search(str(storage), 3).run().state == "finished"
        before = (storage.read_bytes(), storage.stat().st_mtime_ns)
        browsed = Search.load(str(storage))
        assert len(browsed.results) == 3 and browsed.hypervolume() > 0 and len(browsed.pareto())
        assert (storage.read_bytes(), storage.stat().st_mtime_ns) == before


def test_files_that_are_no_journal_are_storage_errors_and_stay_as_they_were(written, tmp_path):
    rng = __import__("random").Random(0)
    noise = bytes(rng.randrange(256) for _ in range(3000))
    lines = written.splitlines(keepends=True)
    cases = {
        "noise.journal": noise,
        "noise_lines.journal": noise[:1000] + b"\n" + noise[1000:2000] + b"\n",
        "json.journal": b'{"a": 1}\n{"b": 2}\n',
        "middle.journal": b"".join(lines[:4])
        + b'{"op_code": 4, "stud'
        + b"\n"
        + b"".join(lines[4:]),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(StorageError, match="not .*journal"):
            Search.load(str(path))
        with pytest.raises(StorageError, match="not .*journal"):
            _search(str(path), 2)
        assert path.read_bytes() == data, name
