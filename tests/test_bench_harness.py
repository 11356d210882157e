"""The benchmark harness: ``python -m bench [NAME ...] [--check] [--quote]``, its results.json
with provenance, and the README's quoted figures."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bench.__main__ as harness
from bench.__main__ import main
from bench._quotes import pending, problems, quotes, requote, unmarked
from bench._report import UNKNOWN_COMMIT, Entry, Figure, Provenance, read_results

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {"name", "value", "unit", "compared_with", "target", "met", "provenance", "older"}
PROVENANCE = {"commit", "dirty", "date", "command", "machine", "load", "seconds"}


def _check_entries(entries: list[dict]) -> None:
    for entry in entries:
        assert set(entry) == FIELDS, entry
        assert isinstance(entry["name"], str) and entry["name"]
        assert isinstance(entry["value"], int | float) and not isinstance(entry["value"], bool)
        assert isinstance(entry["unit"], str) and isinstance(entry["compared_with"], str)
        assert isinstance(entry["target"], str) and entry["met"] in (True, False, None)
        assert set(entry["provenance"]) == PROVENANCE and isinstance(entry["older"], bool)
        p = entry["provenance"]
        assert isinstance(p["commit"], str) and isinstance(p["command"], str)
        if p["commit"] == UNKNOWN_COMMIT:
            assert entry["older"] and p["machine"] == {}
        else:
            assert p["command"].startswith("python -m bench")
            assert {"cpu", "cores", "torch", "python"} <= set(p["machine"])


@pytest.fixture
def fake_bench(tmp_path, monkeypatch):
    """A package ``fakebench`` with benchmarks ``alpha`` and ``beta``; returns its folder.
    The commit the harness sees is ``monkeypatch``-able through ``harness.git_state``."""
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
    _forget_fakebench()  # another test's modules of that name
    _at_commit(monkeypatch, "a" * 40)
    yield folder
    _forget_fakebench()


def _forget_fakebench() -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "fakebench"]:
        del sys.modules[name]


def _at_commit(monkeypatch, commit: str, dirty: bool = False) -> None:
    monkeypatch.setattr(harness, "git_state", lambda: (commit, dirty))


def _run(fake_bench: Path, results: Path, *argv: str, readme: Path | None = None) -> int:
    return main(list(argv), results=results, folder=fake_bench, package="fakebench", readme=readme)


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


def test_results_entries_have_every_field_and_their_provenance(fake_bench, tmp_path):
    results = tmp_path / "results.json"
    assert _run(fake_bench, results) == 0
    entries = json.loads(results.read_text())
    _check_entries(entries)
    assert [e["name"] for e in entries] == ["alpha.ratio", "alpha.time", "beta.ratio", "beta.time"]
    first = entries[0]
    assert {k: first[k] for k in FIELDS - {"provenance"}} == {
        "name": "alpha.ratio",
        "value": 0.5,
        "unit": "x",
        "compared_with": "a fake baseline",
        "target": "<= 1",
        "met": True,
        "older": False,
    }
    p = first["provenance"]
    assert p["commit"] == "a" * 40 and p["dirty"] is False
    assert p["command"] == "python -m bench" and p["date"].endswith("+00:00")
    assert p["machine"]["cores"] >= 1 and p["machine"]["torch"].startswith("2.")
    assert p["seconds"] >= 0 and all(v >= 0 for v in p["load"])


def test_a_partial_run_replaces_its_figures_and_marks_other_commits_older(
    fake_bench, tmp_path, monkeypatch
):
    results = tmp_path / "results.json"
    assert _run(fake_bench, results) == 0  # everything at commit aaa...
    before = {e.name: e for e in read_results(results)}
    _at_commit(monkeypatch, "b" * 40, dirty=True)
    assert _run(fake_bench, results, "alpha") == 0
    after = {e.name: e for e in read_results(results)}
    assert set(after) == set(before)
    for name in ("alpha.time", "alpha.ratio"):  # rerun: replaced, current
        assert after[name].provenance.commit == "b" * 40 and after[name].provenance.dirty
        assert after[name].provenance.command == "python -m bench alpha"
        assert not after[name].older
    for name in ("beta.time", "beta.ratio"):  # not run: kept as they were, marked older
        assert after[name].figure == before[name].figure
        assert after[name].provenance == before[name].provenance
        assert after[name].older
    _at_commit(monkeypatch, "a" * 40)  # back at beta's commit: beta is current again
    assert _run(fake_bench, results, "alpha") == 0
    assert not any(e.older for e in read_results(results))


def test_running_some_benchmarks_drops_the_stale_figures_of_those_only(fake_bench, tmp_path):
    results = tmp_path / "results.json"
    old = [  # the format before provenance: read as unknown provenance, older
        {"name": "alpha.time", "value": 99.0, "unit": "ms", "compared_with": "", "target": "", "met": None},
        {"name": "alpha.gone", "value": 1.0, "unit": "ms", "compared_with": "", "target": "", "met": None},
        {"name": "beta.time", "value": 42.0, "unit": "ms", "compared_with": "old", "target": "", "met": None},
        {"name": "gamma.size", "value": 3.0, "unit": "MB", "compared_with": "", "target": "<= 4", "met": True},
    ]  # fmt: skip
    results.write_text(json.dumps(old))
    assert _run(fake_bench, results, "alpha") == 0
    raw = json.loads(results.read_text())
    _check_entries(raw)  # migrated: every entry now has the fields
    by_name = {e["name"]: e for e in raw}
    assert by_name["alpha.time"]["value"] == 1.5  # rerun: replaced
    assert "alpha.gone" not in by_name  # a rerun benchmark's stale figure goes
    for kept, was in (("beta.time", old[2]), ("gamma.size", old[3])):  # not run: kept
        assert {k: by_name[kept][k] for k in was} == was
        assert by_name[kept]["older"] and by_name[kept]["provenance"]["commit"] == UNKNOWN_COMMIT
    assert "beta.ratio" not in by_name  # beta did not run


def test_an_unknown_name_writes_nothing(fake_bench, tmp_path, capsys):
    results = tmp_path / "results.json"
    assert _run(fake_bench, results, "alpha", "delta") == 2
    assert "available: ['alpha', 'beta']" in capsys.readouterr().err
    assert not results.exists()


def _entry(name: str, value: float, target: str = "", met: bool | None = None) -> Entry:
    return Entry(Figure(name, value, "x", "", target, met), Provenance("c" * 40, False, "d", "x"))


def _write(results: Path, entries: list[Entry]) -> None:
    from bench._report import write_results

    write_results(entries, results)


def test_check_fails_on_a_missed_target_and_lists_it(fake_bench, tmp_path, capsys):
    results = tmp_path / "results.json"
    _write(results, [_entry("a.ok", 1.0, "<= 2", True), _entry("a.slow", 3.0, "<= 2", False)])
    assert _run(fake_bench, results, "--check") == 1
    out = capsys.readouterr().out
    assert "target missed: a.slow = 3 x, target <= 2" in out and "a.ok" not in out
    assert json.loads(results.read_text())[1]["value"] == 3.0  # --check alone runs nothing
    _write(results, [_entry("a.ok", 1.0, "<= 2", True)])
    assert _run(fake_bench, results, "--check") == 0


def test_check_after_a_run_checks_what_it_made(fake_bench, tmp_path, capsys):
    results = tmp_path / "results.json"
    (fake_bench / "bench_beta.py").write_text(
        "from bench._report import Figure\n"
        "def run():\n"
        "    return [Figure('beta.ratio', 1.7, 'x', 'fake', '<= 1', False)]\n"
    )
    assert _run(fake_bench, results, "alpha", "--check") == 0
    assert _run(fake_bench, results, "beta", "--check") == 1
    assert "target missed: beta.ratio" in capsys.readouterr().out


README = """# demo

The cell takes 1.36x<!--fig:w.ratio--> its time, 15,190<!--fig:s.evals--> evaluations,
within 1.5<!--fig:s.gap--> points; the target is 1.5x<!--fig:none-->.

```bash
python -m bench 2.0x
```
Written as `2.5x<!--fig:w.ratio-->`, a marker is an example, not a quote.
"""


def test_quoted_figures_are_found_with_their_precision():
    found = quotes(README)
    assert [(q.name, q.number, q.line, q.decimals) for q in found] == [
        ("w.ratio", "1.36", 3, 2),
        ("s.evals", "15,190", 3, 0),
        ("s.gap", "1.5", 4, 1),
    ]
    assert unmarked(README) == []  # the marked ones, the "none" one and code are not counted
    assert unmarked("it runs 2.5x faster, in 3 ms, 45 µs, 99.3%; 1x1 conv, 8x8 images") == [
        (1, "2.5x"),
        (1, "3 ms"),
        (1, "45 µs"),
        (1, "99.3%"),
    ]


def test_a_negative_figure_is_quoted_with_its_sign():
    text = "gain -1.1<!--fig:t.gain--> points; GPT-2 ran 1.5x<!--fig:t.speed--> faster"
    assert [(q.name, q.number) for q in quotes(text)] == [("t.gain", "-1.1"), ("t.speed", "1.5")]
    assert problems(text, [_entry("t.gain", -1.115), _entry("t.speed", 1.49)]) == []
    (line,) = problems(text, [_entry("t.gain", 1.115), _entry("t.speed", 1.49)])
    assert "-1.1 quotes 't.gain', which is 1.115" in line


def test_quotes_are_checked_against_results_at_the_quoted_precision():
    entries = [_entry("w.ratio", 1.3585), _entry("s.evals", 15189.5), _entry("s.gap", 1.4870)]
    assert problems(README, entries) == []
    wrong = [_entry("w.ratio", 1.3649), _entry("s.evals", 15189.5)]  # 1.36 != 1.3649 -> 1.36?
    assert problems(README, wrong) == [
        "README.md:4: 1.5 quotes 's.gap', which results.json lacks",
    ]
    drifted = [_entry("w.ratio", 1.3651), *entries[1:]]
    (line,) = problems(README, drifted)
    assert line.startswith("README.md:3: 1.36 quotes 'w.ratio', which is 1.3651 (1.37 at")
    (line,) = problems(README + "\nIt is 2.5x faster.\n", entries)
    assert "README.md:11: '2.5x' reads as a measured figure but has no marker" in line
    (line,) = problems(README + "\nwithin 1.5 accuracy points<!--fig:s.gap-->\n", entries)
    assert line.startswith("README.md:11: the marker of 's.gap' follows no number")


def test_requote_rewrites_marked_numbers_at_their_precision(fake_bench, tmp_path):
    entries = [_entry("w.ratio", 1.2312), _entry("s.evals", 1234567.0), _entry("s.gap", 1.4870)]
    text, changes = requote(README, entries)
    assert "takes 1.23x<!--fig:w.ratio-->" in text and "1,234,567<!--fig:s.evals-->" in text
    assert "1.5<!--fig:s.gap-->" in text and "target is 1.5x<!--fig:none-->" in text
    assert changes == ["line 3: w.ratio: 1.36 -> 1.23", "line 3: s.evals: 15,190 -> 1,234,567"]
    assert problems(text, entries) == []
    readme, results = tmp_path / "README.md", tmp_path / "results.json"
    readme.write_text(README)
    _write(results, entries)
    assert _run(fake_bench, results, "--check", readme=readme) == 1  # misquoted
    assert _run(fake_bench, results, "--quote", readme=readme) == 0
    assert readme.read_text() == text
    assert _run(fake_bench, results, "--check", readme=readme) == 0


PENDING = "Measured once: 2.25x<!--fig:pending:alpha.ratio--> and 3 ms<!--fig:pending:gamma.t-->.\n"


def test_pending_figures_are_listed_until_recorded_then_quoted(fake_bench, tmp_path, capsys):
    """A figure measured but not yet in results.json is marked pending: it is no problem while
    unrecorded (a pending name must name a benchmark), is listed by --check with the benchmark
    to run, and once recorded --check fails until --quote rewrites it and drops 'pending:'."""
    text = README + PENDING
    entries = [_entry("w.ratio", 1.3585), _entry("s.evals", 15189.5), _entry("s.gap", 1.487)]
    assert [(q.name, q.number) for q in pending(text)] == [
        ("alpha.ratio", "2.25"),
        ("gamma.t", "3"),
    ]
    assert problems(text, entries) == []
    (line,) = problems(text, entries, benches={"alpha", "beta"})
    assert "'gamma.t', but no benchmark is named 'gamma'" in line
    text = text.replace("gamma.t", "beta.t")
    readme, results = tmp_path / "README.md", tmp_path / "results.json"
    readme.write_text(text)
    _write(results, entries)
    assert _run(fake_bench, results, "--check", readme=readme) == 0
    out = capsys.readouterr().out
    assert "2 quoted figure(s) not recorded yet (marked pending): ['alpha.ratio', 'beta.t']" in out
    assert "`python -m bench alpha beta`" in out
    _write(results, [*entries, _entry("alpha.ratio", 0.5)])
    assert _run(fake_bench, results, "--check", readme=readme) == 1
    assert (
        "2.25 is marked pending but 'alpha.ratio' is recorded now (0.5)" in capsys.readouterr().out
    )
    assert _run(fake_bench, results, "--quote", readme=readme) == 0
    assert "Measured once: 0.50x<!--fig:alpha.ratio--> and 3 ms<!--fig:pending:beta.t-->" in (
        readme.read_text()
    )
    assert _run(fake_bench, results, "--check", readme=readme) == 0


def test_the_committed_results_file_has_every_field():
    _check_entries(json.loads((ROOT / "bench" / "results.json").read_text()))


def test_every_figure_the_readme_quotes_is_in_results_with_that_value():
    """README figures are marked (``1.36x<!--fig:NAME-->``): each must be an entry of
    bench/results.json with that value at the quoted precision, and nothing that reads as a
    measured figure may go unmarked. After re-running benchmarks, ``python -m bench --quote``
    brings the README up to date."""
    readme = (ROOT / "README.md").read_text()
    assert len(quotes(readme)) >= 40  # the README quotes its figures through markers
    benches = {p.stem[len("bench_") :] for p in (ROOT / "bench").glob("bench_*.py")}
    assert (
        problems(readme, read_results(ROOT / "bench" / "results.json"), "README.md", benches) == []
    )


def test_a_checkout_whose_only_change_is_the_results_file_is_clean(tmp_path):
    """Running benchmarks one after another rewrites bench/results.json; that alone must not
    mark the next ones' figures as made from a changed checkout (nor lose the first line)."""
    from bench._report import git_state

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results.json").write_text("[]")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (tmp_path / "bench" / "results.json").write_text("[1]")
    commit, dirty = git_state(tmp_path)
    assert len(commit) == 40 and dirty is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path) == (commit, True)


def test_numpy_scalars_in_a_figure_are_written_as_json_values(tmp_path):
    """A benchmark's ``met = a <= b`` on numpy numbers is an ``np.bool_``: it must not lose the
    whole run's figures when the file is written."""
    import numpy as np

    from bench._report import Entry, Figure, Provenance, read_results, write_results

    figure = Figure("n.ratio", np.float64(1.5), "x", "np", "<= 2", np.bool_(True))
    entry = Entry(figure, Provenance("a" * 40, False, "d", "c", {}, (), 1.0), False)
    write_results([entry], tmp_path / "r.json")
    (back,) = read_results(tmp_path / "r.json")
    assert back.figure.value == 1.5 and back.figure.met is True
