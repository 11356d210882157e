"""``.ci/fresh-runs``: CI on a fresh clone, N times in a row, stopping at the first failure
(issue 21: three green runs on fresh clones before closing). Tested on a small repository whose
``.ci/run`` records what it sees, not on the real CI (that is what the script is for)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "fresh-runs"

# the toy CI: records its run, fails on the run named in FAIL_ON, and leaves a file behind that
# a fresh clone must not see
CI = """#!/usr/bin/env bash
set -eu
n=$(( $(cat "$SEEN" 2>/dev/null | wc -l) + 1 ))
echo "run $n: $(ls -A | tr '\\n' ' ')" >> "$SEEN"
touch leftover
echo "the toy CI's output of run $n"
[ "$n" != "${FAIL_ON:-0}" ]
"""


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / ".ci" / "run").write_text(CI)
    (repo / ".ci" / "run").chmod(0o755)
    (repo / "README.md").write_text("toy\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "toy"], check=True)
    (repo / "uncommitted").write_text("not in a fresh clone\n")
    return repo


def _fresh_runs(tmp_path: Path, *args: str, fail_on: int = 0) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FRESH_RUNS_REPO": str(tmp_path / "repo"),
        "FRESH_RUNS_LOGS": str(tmp_path / "logs"),
        "SEEN": str(tmp_path / "seen"),
        "FAIL_ON": str(fail_on),
        "TMPDIR": str(tmp_path),
    }
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_each_run_gets_a_fresh_clone_of_the_commit_and_all_must_pass(tmp_path):
    _repo(tmp_path)
    done = _fresh_runs(tmp_path)
    assert done.returncode == 0, done.stderr
    seen = (tmp_path / "seen").read_text().splitlines()
    # three runs, each in a clone holding only what is committed: no leftover of the run
    # before, nothing uncommitted
    assert seen == [f"run {n}: .ci .git README.md " for n in (1, 2, 3)]
    assert "all 3 fresh runs of" in done.stdout
    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert logs == ["run-1.log", "run-2.log", "run-3.log"]
    assert (tmp_path / "logs" / "run-2.log").read_text() == "the toy CI's output of run 2\n"
    assert not list(tmp_path.glob("nasviz-fresh-run-*"))  # passed clones are removed


def test_the_first_failure_stops_the_runs_and_keeps_its_clone(tmp_path):
    _repo(tmp_path)
    done = _fresh_runs(tmp_path, "4", fail_on=2)
    assert done.returncode == 1
    assert len((tmp_path / "seen").read_text().splitlines()) == 2  # runs 3 and 4 never ran
    assert "FAILED (exit 1)" in done.stderr and "the toy CI's output of run 2" in done.stderr
    (kept,) = tmp_path.glob("nasviz-fresh-run-2.*")
    assert (kept / "leftover").exists()


def test_a_bad_count_is_refused_and_a_command_can_be_given(tmp_path):
    _repo(tmp_path)
    bad = _fresh_runs(tmp_path, "three")
    assert bad.returncode == 2 and "N must be a positive integer, got 'three'" in bad.stderr
    done = _fresh_runs(tmp_path, "1", "--", "bash", "-c", "test -f README.md && echo custom")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "logs" / "run-1.log").read_text() == "custom\n"
    assert not (tmp_path / "seen").exists()
