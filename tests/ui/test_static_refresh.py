"""An executed notebook keeps the *final* static figure of a live view, through a real kernel.

A dashboard and a training monitor are displayed while their runs have barely started; when a
run ends its view's output is replaced (``update_display``), so the notebook nbclient/papermill
writes shows the whole front and the whole loss curves, not what was drawn when the cell ran.
One notebook (one kernel) serves both tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

HERE = Path(__file__).parent
BUDGET = 24

CELLS = [
    f"""
import sys, time
import torch
sys.path.insert(0, {str(HERE)!r})
from ui_helpers import make_search, two_objectives
from nasviz.data import digits
from nasviz.supernet import ElasticMLP, train_supernet
from nasviz.ui import SearchDashboard, TrainingMonitor

def slow(arch):
    time.sleep(0.03)
    return two_objectives(arch)

search = make_search(fn=slow, budget={BUDGET})
torch.manual_seed(0)
run = train_supernet(ElasticMLP(), digits(flat=True), epochs=1, batch_size=256, seed=0)
""",
    "dashboard = SearchDashboard(search)\ndisplay(dashboard)\nsearch.start()\ndashboard",
    "print(search.wait().state)",
    "dashboard.drawn_points",
    "monitor = TrainingMonitor(run)\nrun.start()\nmonitor",
    "print(run.wait().state, run.history['step'].nunique())",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path_factory.mktemp("static")
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path)}}
    ).execute()
    return nb


def _title_count(output: dict, pattern: str) -> int:
    """The count in a static figure's title (``—`` may be JSON-escaped in the HTML)."""
    found = re.search(pattern.replace("—", r"(?:—|\\u2014)"), output["data"]["text/html"])
    return int(found.group(1))


def test_the_executed_notebook_holds_the_final_front(executed):
    outputs = executed.cells[1].outputs  # displayed twice: both outputs are replaced
    assert len(outputs) == 2
    for shown in outputs:
        assert "application/vnd.jupyter.widget-view+json" in shown["data"]  # the live widget
        # and the static figure of the finished search
        assert _title_count(shown, r"Pareto front — (\d+) evaluated") == BUDGET
    assert "finished" in executed.cells[2].outputs[0]["text"]
    assert executed.cells[3].outputs[0]["data"]["text/plain"] == str(BUDGET)


def test_the_executed_notebook_holds_the_final_loss_curves(executed):
    state, steps = executed.cells[5].outputs[0]["text"].split()
    assert state == "finished" and int(steps) > 0
    shown = executed.cells[4].outputs[0]
    assert "application/vnd.jupyter.widget-view+json" in shown["data"]
    # the whole run, not its start
    assert _title_count(shown, r"sandwich member — (\d+) steps") == int(steps)
