"""The benchmark harness: ``python -m bench [NAME ...]`` and its results.json."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {"name", "value", "unit", "compared_with", "target", "met"}


def _check_entries(entries: list[dict]) -> None:
    for entry in entries:
        assert set(entry) == FIELDS, entry
        assert isinstance(entry["name"], str) and entry["name"]
        assert isinstance(entry["value"], int | float) and not isinstance(entry["value"], bool)
        assert isinstance(entry["unit"], str) and isinstance(entry["compared_with"], str)
        assert isinstance(entry["target"], str) and entry["met"] in (True, False, None)


@pytest.fixture
def fake_bench(tmp_path, monkeypatch):
    """A package ``fakebench`` with benchmarks ``alpha`` and ``beta``; returns its folder."""
    folder = tmp_path / "fakebench"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name, value in (("alpha", 1.5), ("beta", 7.0)):
        (folder / f"bench_{name}.py").write_text(
            textwrap.dedent(f"""
                from bench._report import Figure

                def run():
                    return [
                        Figure("{name}.time", {value}, "ms", "a fake baseline"),
                        Figure("{name}.ratio", 0.5, "x", "a fake baseline", "<= 1", True),
                    ]
            """)
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    return folder


def _run(fake_bench: Path, results: Path, *names: str) -> int:
    return main(list(names), results=results, folder=fake_bench, package="fakebench")


def test_unknown_benchmark_exits_2_and_lists_the_available_ones():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "no_such_bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown benchmark(s) ['no_such_bench']" in proc.stderr
    available = sorted(p.stem[len("bench_") :] for p in (ROOT / "bench").glob("bench_*.py"))
    assert f"available: {available}" in proc.stderr and "objectives" in available


def test_results_entries_have_every_field(fake_bench, tmp_path):
    results = tmp_path / "results.json"
    assert _run(fake_bench, results) == 0
    entries = json.loads(results.read_text())
    _check_entries(entries)
    assert [e["name"] for e in entries] == ["alpha.ratio", "alpha.time", "beta.ratio", "beta.time"]
    assert entries[0] == {
        "name": "alpha.ratio",
        "value": 0.5,
        "unit": "x",
        "compared_with": "a fake baseline",
        "target": "<= 1",
        "met": True,
    }


def test_running_some_benchmarks_keeps_the_figures_of_the_others(fake_bench, tmp_path):
    results = tmp_path / "results.json"
    old = [
        {"name": "alpha.time", "value": 99.0, "unit": "ms", "compared_with": "", "target": "", "met": None},
        {"name": "alpha.gone", "value": 1.0, "unit": "ms", "compared_with": "", "target": "", "met": None},
        {"name": "beta.time", "value": 42.0, "unit": "ms", "compared_with": "old", "target": "", "met": None},
        {"name": "gamma.size", "value": 3.0, "unit": "MB", "compared_with": "", "target": "<= 4", "met": True},
    ]  # fmt: skip
    results.write_text(json.dumps(old))
    assert _run(fake_bench, results, "alpha") == 0
    by_name = {e["name"]: e for e in json.loads(results.read_text())}
    assert by_name["alpha.time"]["value"] == 1.5  # rerun: replaced
    assert "alpha.gone" not in by_name  # a rerun benchmark's stale figure goes
    assert by_name["beta.time"] == old[2] and by_name["gamma.size"] == old[3]  # not run: kept
    assert "beta.ratio" not in by_name  # beta did not run
    _check_entries(list(by_name.values()))


def test_an_unknown_name_writes_nothing(fake_bench, tmp_path, capsys):
    results = tmp_path / "results.json"
    assert _run(fake_bench, results, "alpha", "delta") == 2
    assert "available: ['alpha', 'beta']" in capsys.readouterr().err
    assert not results.exists()


def test_the_committed_results_file_has_every_field():
    _check_entries(json.loads((ROOT / "bench" / "results.json").read_text()))
