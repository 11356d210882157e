"""An executed notebook keeps the *final* static figure of a live view, through a real kernel.

A dashboard and a training monitor are displayed while their runs have barely started; when a
run ends its view's output is replaced (``update_display``), so the notebook nbclient/papermill
writes shows the whole front and the whole loss curves, not what was drawn when the cell ran.
nbclient is a program, not a person: the views emit their static figure alone (plotly JSON and
a PNG), no widget, and send no widget model at all. One notebook (one kernel) serves all tests.
"""

from __future__ import annotations

import base64
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
    "len(search.results)",
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


PLOTLY = "application/vnd.plotly.v1+json"


def _title_count(output: dict, pattern: str) -> int:
    """The count in a static figure's title."""
    title = output["data"][PLOTLY]["layout"]["title"]["text"]
    return int(re.search(pattern, title).group(1))


def _is_report(output: dict) -> bool:
    """A static figure as a report: plotly JSON and a PNG, no widget, no HTML (no CDN)."""
    data = output["data"]
    png = base64.b64decode(data.get("image/png", ""))
    return (
        PLOTLY in data
        and png.startswith(b"\x89PNG")
        and "application/vnd.jupyter.widget-view+json" not in data
        and "text/html" not in data
    )


def test_the_executed_notebook_holds_the_final_front(executed):
    outputs = executed.cells[1].outputs  # displayed twice: both outputs are replaced
    assert len(outputs) == 2
    for shown in outputs:
        assert _is_report(shown)
        # the static figure of the finished search
        assert _title_count(shown, r"Pareto front — (\d+) evaluated") == BUDGET
    assert "finished" in executed.cells[2].outputs[0]["text"]
    assert executed.cells[3].outputs[0]["data"]["text/plain"] == str(BUDGET)


def test_the_executed_notebook_holds_the_final_loss_curves(executed):
    state, steps = executed.cells[5].outputs[0]["text"].split()
    assert state == "finished" and int(steps) > 0
    shown = executed.cells[4].outputs[0]
    assert _is_report(shown)
    # the whole run, not its start
    assert _title_count(shown, r"sandwich member — (\d+) steps") == int(steps)


def test_no_widget_state_is_saved(executed):
    """Nobody could use the widgets of a notebook run by a program: the views build them
    offline, so nbclient saves no widget state (a figure widget's would hold plotly's 5 MB
    front-end module; and JupyterLab, reopening a notebook with widget state, asks the new
    kernel for every saved model: "No such comm")."""
    assert "widgets" not in executed.metadata
