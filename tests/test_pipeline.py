"""`nasviz run` / `nasviz pipeline`: checks before any kernel starts, provenance, failures
(a cell error, a timeout, a dead kernel) named and kept, the command line, the packaged notebooks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nasviz import ConfigError, PipelineError
from nasviz.pipeline import (
    STEPS,
    available_notebooks,
    notebook_parameters,
    prepare_resumable,
    resolve_notebook,
    run_notebook,
    run_pipeline,
)
from nasviz.pipeline._cli import _parse_value

ROOT = Path(__file__).parents[1]
NASVIZ = Path(sys.executable).with_name("nasviz")  # the console script of this environment


def _notebook(path: Path, *bodies: str) -> Path:
    params = new_code_cell("seed = 0\nscale = 1.5\nname = 'x'\nout_dir = 'runs'")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, *(new_code_cell(b) for b in bodies)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


GOOD = """
import json, pathlib
pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
(pathlib.Path(out_dir) / "result.json").write_text(json.dumps({"value": seed * scale, "name": name}))
"""


def test_parameters_are_inspected(tmp_path):
    nb = _notebook(tmp_path / "step.ipynb", GOOD)
    declared = notebook_parameters(nb)
    assert list(declared) == ["seed", "scale", "name", "out_dir"]
    assert declared["seed"]["type"] == "int" and declared["scale"]["default"] == "1.5"


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (
            {"sed": 1},
            r"has no parameter\(s\) \['sed'\]; its parameters are: seed \(int, default 0\)",
        ),
        ({"seed": "one"}, r"parameter 'seed' expects int \(default 0\), got str 'one'"),
        ({"seed": True}, r"parameter 'seed' expects int"),
        ({"scale": "big"}, r"parameter 'scale' expects float"),
    ],
)
def test_bad_parameters_fail_before_any_kernel_starts(tmp_path, params, needle):
    nb = _notebook(tmp_path / "step.ipynb", GOOD)
    with pytest.raises(ConfigError, match=needle):
        run_notebook(nb, params, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing was started or written


def test_unknown_notebook_and_unwritable_output(tmp_path):
    with pytest.raises(ConfigError, match=r"notebook 'nope' not found; .* one of: .*00_tour"):
        resolve_notebook("nope")
    assert resolve_notebook("00_tour").name == "00_tour.ipynb"
    assert resolve_notebook("pipeline/2_search") == STEPS[1].path
    assert "pipeline/4_report" in available_notebooks()
    nb = _notebook(tmp_path / "step.ipynb", GOOD)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="output folder .* cannot be written"):
        run_notebook(nb, {}, out=blocker / "out")
    with pytest.raises(ConfigError, match=r"timeout must be a number of seconds > 0"):
        run_notebook(nb, {}, out=tmp_path / "out", timeout=0)
    assert blocker.read_text() == "not a folder" and not (tmp_path / "out").exists()


def test_pipeline_arguments_are_checked_before_any_kernel(tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown pipeline step 'serch'; steps: \['train_supernet'"
    ):
        run_pipeline(tmp_path / "out", until="serch")
    with pytest.raises(ConfigError, match=r"timeout must be a number, got 'soon'"):
        run_pipeline(tmp_path / "out", timeout="soon")
    assert not (tmp_path / "out").exists()


@pytest.mark.notebook
def test_run_writes_outputs_and_provenance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = _notebook(tmp_path / "step.ipynb", GOOD)
    executed = run_notebook(nb, {"scale": 2}, out="out", say=lambda _line: None)
    assert executed == Path("out") / "step.ipynb" and executed.exists()
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == {"value": 0, "name": "x"}
    prov = json.loads((tmp_path / "out" / "step.provenance.json").read_text())
    assert prov["parameters"] == {"scale": 2, "out_dir": "out"}  # what was given
    # what was in effect: the seed the notebook used, its default, not null
    assert prov["effective_parameters"] == {"seed": 0, "scale": 2, "name": "x", "out_dir": "out"}
    assert prov["seed"] == 0 and prov["status"] == "completed"
    assert prov["nasviz"] and prov["torch"].startswith("2.")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "result.json",
        "step.ipynb",
        "step.provenance.json",
    ]  # no temporary copy, no kernel log left behind


@pytest.mark.notebook
def test_a_failed_rerun_never_replaces_a_good_run(tmp_path, monkeypatch):
    """A rerun whose parameter fails inside the kernel is written beside the good run."""
    monkeypatch.chdir(tmp_path)
    nb = _notebook(tmp_path / "step.ipynb", "assert scale > 0, 'scale must be positive'", GOOD)
    run_notebook(nb, {"scale": 2}, out="out", say=lambda _line: None)
    good = (tmp_path / "out" / "step.ipynb").read_bytes()
    good_prov = (tmp_path / "out" / "step.provenance.json").read_bytes()
    with pytest.raises(PipelineError, match=r"kept at out/step\.failed\.ipynb"):
        run_notebook(nb, {"scale": -1}, out="out", say=lambda _line: None)
    assert (tmp_path / "out" / "step.ipynb").read_bytes() == good
    assert (tmp_path / "out" / "step.provenance.json").read_bytes() == good_prov
    failed = json.loads((tmp_path / "out" / "step.failed.provenance.json").read_text())
    assert failed["status"] == "failed" and "scale must be positive" in failed["error"]
    assert [e["ename"] for _, e in _error_outputs(tmp_path / "out" / "step.failed.ipynb")] == [
        "AssertionError"
    ]


@pytest.mark.notebook
def test_a_failing_cell_is_named_and_the_executed_notebook_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = _notebook(tmp_path / "bad.ipynb", "raise ValueError('broken step')")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "earlier.csv").write_text("kept")
    with pytest.raises(
        PipelineError,
        match=r"bad.ipynb failed in cell In \[3\] \(\"raise ValueError\('broken step'\)\"\) with ValueError: broken step",
    ):
        run_notebook(nb, {}, out="out")
    assert (tmp_path / "out" / "bad.ipynb").exists()
    assert (tmp_path / "out" / "earlier.csv").read_text() == "kept"
    prov = json.loads((tmp_path / "out" / "bad.provenance.json").read_text())
    assert prov["status"] == "failed" and "broken step" in prov["error"]


def _error_outputs(executed: Path) -> list[tuple[int, dict]]:
    nb = nbformat.read(executed, as_version=4)
    return [
        (i, o)
        for i, c in enumerate(nb.cells)
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


@pytest.mark.notebook
def test_a_killed_kernel_is_named_and_recorded(tmp_path, monkeypatch):
    """What mybinder.org does to a kernel past 2 GB, or the OOM killer anywhere."""
    monkeypatch.chdir(tmp_path)
    nb = _notebook(
        tmp_path / "oom.ipynb", "x = 1", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    )
    with pytest.raises(
        PipelineError,
        # "In [4]" when the kernel announced the cell before dying, "#4" (its position) otherwise
        match=r"oom.ipynb failed in cell (In \[4\]|#4) \('import os, signal'\): the kernel died .*out of memory",
    ):
        run_notebook(nb, {}, out="out")
    prov = json.loads((tmp_path / "out" / "oom.provenance.json").read_text())
    assert prov["status"] == "failed" and "the kernel died" in prov["error"]
    [(index, error)] = _error_outputs(tmp_path / "out" / "oom.ipynb")
    assert index == 3 and "the kernel died" in error["evalue"]  # cell 0 is papermill's injected one


@pytest.mark.notebook
def test_a_cell_past_the_timeout_is_interrupted_and_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = _notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(60)")
    with pytest.raises(
        PipelineError,
        match=r"slow.ipynb failed in cell In \[3\] \('import time'\): it ran longer than the 2 s cell timeout",
    ):
        run_notebook(nb, {}, out="out", timeout=2)
    prov = json.loads((tmp_path / "out" / "slow.provenance.json").read_text())
    assert prov["status"] == "failed" and "timeout" in prov["error"]
    assert [i for i, _ in _error_outputs(tmp_path / "out" / "slow.ipynb")] == [2]


def test_a_resumable_file_is_kept_for_the_same_key_and_set_aside_otherwise(tmp_path):
    journal = tmp_path / "search.journal"
    assert prepare_resumable(journal, {"seed": 0}) is None and not journal.exists()
    journal.write_text("first evaluations\n")
    assert prepare_resumable(journal, {"seed": 0}) is None  # same key: resumed as it is
    assert journal.read_text() == "first evaluations\n"
    moved = prepare_resumable(journal, {"seed": 1})
    assert moved == tmp_path / "search.1.journal" and moved.read_text() == "first evaluations\n"
    assert json.loads((tmp_path / "search.1.journal.key.json").read_text()) == {"seed": 0}
    assert not journal.exists()
    journal.write_text("second\n")
    assert prepare_resumable(journal, {"seed": 2}) == tmp_path / "search.2.journal"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "search.1.journal",
        "search.1.journal.key.json",
        "search.2.journal",
        "search.2.journal.key.json",
        "search.journal.key.json",
    ]


def test_cli_values_parse_like_python_literals():
    assert _parse_value("3") == 3 and _parse_value("0.5") == 0.5 and _parse_value("true") is True
    assert (
        _parse_value("nsga2") == "nsga2"
        and _parse_value("[1, 2]") == [1, 2]
        and _parse_value("False") is False
    )


def test_the_nasviz_command_checks_before_any_kernel(tmp_path):
    """The installed console script, run as a user runs it (in parallel: each start imports torch)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    calls = {
        "params": ["params", "pipeline/2_search"],
        "unknown": ["pipeline", "-o", "a", "-p", "epoch", "3"],
        "mistyped": ["pipeline", "-o", "b", "-p", "budget", "many"],
        "version": ["--version"],
        "negative": ["run", "02_search", "-o", "e", "-p", "budget", "-3"],
        "choice": ["run", "02_search", "-o", "f", "-p", "strategy", "bogus"],
        "storage": ["run", "02_search", "-o", "g", "-p", "storage", "5"],
        "unwritable": ["pipeline", "-o", str(blocker / "out")],
        "until": ["pipeline", "-o", "c", "--until", "serch"],
        "notebook": ["run", "nope", "-o", "d"],
    }
    procs = {
        name: subprocess.Popen(
            [str(NASVIZ), *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in calls.items()
    }
    done = {name: (p.wait(600), *p.communicate()) for name, p in procs.items()}
    rc, out, err = done["params"]
    assert rc == 0, err
    assert out.splitlines() == [
        "seed = 0  # int  (≥ 0)",
        'strategy = "nsga2"  # str  one of: "random", "nsga2", "predictor"',
        "budget = 30  # int  evaluations (≥ 1)",
        'out_dir = "runs/pipeline"  # str',
    ]
    rc, out, err = done["version"]
    assert rc == 0 and re.fullmatch(r"nasviz \d+\.\d+\.\d+\S*\n", out), (out, err)
    expected = {
        "unknown": r"nasviz: error: no pipeline step has parameter\(s\) \['epoch'\]; parameters by step: train_supernet: seed, family, epochs",
        "mistyped": r"parameter 'budget' expects int \(default 30\), got str 'many'",
        # values the notebooks rule out, before any kernel starts
        "negative": r"parameter 'budget' must be at least 1 \(default 24\), got -3",
        "choice": r"parameter 'strategy' must be one of \['random', 'nsga2', 'predictor'\] \(default \"predictor\"\), got 'bogus'",
        "storage": r"parameter 'storage' expects str \| None \(default None\), got int 5",
        "unwritable": r"output folder '.*file/out' cannot be written",
        "until": r"unknown pipeline step 'serch'",
        "notebook": r"notebook 'nope' not found; .* one of: 00_tour, 01_supernet",
    }

    for name, pattern in expected.items():
        rc, out, err = done[name]
        assert rc == 2 and re.search(pattern, err), (name, rc, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing was created
    assert blocker.read_text() == "not a folder"


@pytest.mark.notebook
def test_cli_run_and_unknown_parameter(tmp_path):
    """The terminal shows each cell and the notebook's notices, nothing of the kernel's own log,
    and ends with the executed notebook's path."""
    nb = _notebook(
        tmp_path / "step.ipynb",
        GOOD,
        "from nasviz.pipeline import notice\nnotice('a rough stand-in was used')",
    )
    bad = subprocess.run(
        [str(NASVIZ), "run", str(nb), "-p", "seeds", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "has no parameter(s) ['seeds']" in bad.stderr
    ok = subprocess.run(
        [str(NASVIZ), "run", str(nb), "-p", "seed", "2", "-o", "o"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "o" / "result.json").read_text())["value"] == 3.0
    assert ok.stdout.splitlines()[-1] == "executed notebook: o/step.ipynb"
    lines = ok.stderr.splitlines()
    assert "step: cell 3/4 'import json, pathlib'" in lines
    assert "step: note: a rough stand-in was used" in lines
    assert not [line for line in lines if "Kernel" in line or "WARNING" in line], ok.stderr
    prov = json.loads((tmp_path / "o" / "step.provenance.json").read_text())
    assert prov["notices"] == ["a rough stand-in was used"]


def test_the_wheel_ships_the_notebooks_and_finds_them(tmp_path):
    """A plain ``pip install nasviz`` (no checkout) must still run ``nasviz run 02_search``:
    the wheel holds every notebook of the checkout (and nothing else from notebooks/), and the
    lookup finds the packaged copies."""
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hatchling.build as b; print(b.build_wheel(sys.argv[1]))",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = tmp_path / build.stdout.strip().splitlines()[-1]
    committed = sorted(f"nasviz/notebooks/{name}.ipynb" for name in available_notebooks())
    with zipfile.ZipFile(wheel) as zf:
        shipped = sorted(n for n in zf.namelist() if n.startswith("nasviz/notebooks/"))
        zf.extractall(tmp_path / "site")
    # every notebook, and nothing else (no runs/, no generators)
    assert shipped == committed, (
        "pyproject.toml's [tool.hatch.build.targets.wheel.force-include] must map each "
        "notebooks/X.ipynb to nasviz/notebooks/X.ipynb"
    )
    lookup = subprocess.run(
        [
            sys.executable,
            "-c",
            "from nasviz.pipeline import STEPS, available_notebooks, resolve_notebook; "
            "print(resolve_notebook('02_search')); print(STEPS[0].path); print(len(available_notebooks()))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )
    assert lookup.returncode == 0, lookup.stderr[-2000:]
    packaged = tmp_path / "site" / "nasviz" / "notebooks"
    assert lookup.stdout.split() == [
        str(packaged / "02_search.ipynb"),
        str(packaged / "pipeline" / "1_train_supernet.ipynb"),
        str(len(committed)),
    ]
