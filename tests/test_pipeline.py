"""`nasviz run`: parameter checks before any kernel starts, provenance, failures kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nasviz import ConfigError, PipelineError
from nasviz.pipeline import notebook_parameters, resolve_notebook, run_notebook
from nasviz.pipeline._cli import _parse_value


def _notebook(path: Path, body: str) -> Path:
    params = new_code_cell("seed = 0\nscale = 1.5\nname = 'x'\nout_dir = 'runs'")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(body)])
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
    nb = _notebook(tmp_path / "step.ipynb", GOOD)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="output folder .* cannot be written"):
        run_notebook(nb, {}, out=blocker / "out")


@pytest.mark.notebook
def test_run_writes_outputs_and_provenance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = _notebook(tmp_path / "step.ipynb", GOOD)
    executed = run_notebook(nb, {"seed": 4, "scale": 2}, out="out")
    assert executed == Path("out") / "step.ipynb" and executed.exists()
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == {"value": 8, "name": "x"}
    prov = json.loads((tmp_path / "out" / "step.provenance.json").read_text())
    assert prov["parameters"] == {"seed": 4, "scale": 2, "out_dir": "out"}
    assert prov["seed"] == 4 and prov["status"] == "completed"
    assert prov["nasviz"] and prov["torch"].startswith("2.")


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


def test_cli_values_parse_like_python_literals():
    assert _parse_value("3") == 3 and _parse_value("0.5") == 0.5 and _parse_value("true") is True
    assert (
        _parse_value("nsga2") == "nsga2"
        and _parse_value("[1, 2]") == [1, 2]
        and _parse_value("False") is False
    )


@pytest.mark.notebook
def test_cli_run_and_unknown_parameter(tmp_path):
    nb = _notebook(tmp_path / "step.ipynb", GOOD)
    cli = [sys.executable, "-m", "nasviz.pipeline"]
    bad = subprocess.run(
        [*cli, "run", str(nb), "-p", "seeds", "2"], capture_output=True, text=True, cwd=tmp_path
    )
    assert bad.returncode == 2 and "has no parameter(s) ['seeds']" in bad.stderr
    ok = subprocess.run(
        [*cli, "run", str(nb), "-p", "seed", "2", "-o", "o"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "o" / "result.json").read_text())["value"] == 3.0
    listing = subprocess.run(
        [*cli, "params", str(nb)], capture_output=True, text=True, check=True
    ).stdout
    assert "seed = 0  # int" in listing
