"""The README's quick start works as written: its code block, copied verbatim from README.md,
run in one notebook cell of a real kernel shows the dashboard and a non-empty front, and run as a
script prints the search's status and the front."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

README = Path(__file__).parents[2] / "README.md"
BUDGET = 30
PLOTLY = "application/vnd.plotly.v1+json"


def quick_start() -> str:
    """The first python code block under the README's "Quick start" heading."""
    text = README.read_text()
    section = text[text.index("## Quick start") :]
    section = section[: section.find("\n## ", 3)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's quick start has no python code block"
    return blocks[0]


def _front_rows(text: str) -> list[list[str]]:
    """The rows of the printed front table (``trial  accuracy  macs`` header, then rows)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["trial", "accuracy", "macs"])
    return [line.split() for line in lines[start + 1 :] if line.strip()]


def test_the_quick_start_block_is_the_one_documented():
    code = quick_start()
    assert "SearchDashboard(search)" in code and "search.pareto()" in code
    assert f"budget={BUDGET}" in code and "seed=0" in code  # small and seeded


@pytest.mark.notebook
def test_the_quick_start_runs_as_written_in_a_notebook_cell(tmp_path):
    nb = new_notebook(cells=[new_code_cell(quick_start())])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"]
    # the dashboard appears, and ends on the finished front (its output is refreshed)
    [dashboard] = [o for o in outputs if PLOTLY in o.get("data", {})]
    title = dashboard["data"][PLOTLY]["layout"]["title"]["text"]
    found = re.match(rf"Pareto front — {BUDGET} evaluated, (\d+) on the front", title)
    assert found and int(found.group(1)) >= 1, title
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"finished: {BUDGET}/{BUDGET} evaluations" in printed
    rows = _front_rows(printed)
    assert len(rows) == int(found.group(1))  # the printed front is the drawn one
    assert (tmp_path / "runs" / "quickstart.journal").is_file()


@pytest.mark.notebook
def test_the_quick_start_runs_as_a_script(tmp_path):
    script = tmp_path / "quickstart.py"
    script.write_text(quick_start())
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("SearchDashboard(idle: 0/30")  # the dashboard's status line
    assert lines[1].startswith(f"finished: {BUDGET}/{BUDGET} evaluations")
    rows = _front_rows(done.stdout)
    assert rows and all(len(row) == 4 for row in rows)  # index, trial, accuracy, macs
