"""An executed notebook reads as a report in JupyterLab without running anything: 03_pareto run
by papermill (the live dashboards and the explorer included) shows every figure when opened,
untrusted (as a freshly copied file is) and trusted, offline (the browser here reaches nothing
but the server), with no empty widget box and no console error."""

from __future__ import annotations

import shutil

import nbformat
import papermill
import pytest
from nbformat.sign import NotebookNotary

from .conftest import ROOT, open_notebook, wait_for

# papermill runs 03_pareto first: on a loaded machine that takes several times its budget
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1800)]

PLOTLY = "application/vnd.plotly.v1+json"
SMALL = {"seed": 1, "epochs": 1, "budget": 8, "strategy": "random", "workers": 1}


@pytest.fixture(scope="module")
def reports(lab):
    """03_pareto executed by papermill into the lab's folder, once as is and once signed."""
    executed = lab.root / "report-untrusted.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "03_pareto.ipynb"),
        str(executed),
        parameters=SMALL,
        cwd=str(lab.root),
        kernel_name="python3",
        progress_bar=False,
    )
    trusted = lab.root / "report-trusted.ipynb"
    shutil.copy(executed, trusted)
    nb = nbformat.read(trusted, as_version=4)
    NotebookNotary().sign(nb)
    nbformat.write(nb, trusted)
    figures = sum(PLOTLY in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert figures >= 3  # two dashboards and the explorer
    return figures


#: A figure output: drawn by JupyterLab's plotly extension (a safe renderer: trusted or not),
#: or shown as its PNG
FIGURES = (
    ".jp-OutputArea-output.jp-RenderedPlotly, .jp-OutputArea-output[data-mime-type='image/png']"
)


@pytest.mark.parametrize("name", ["report-untrusted.ipynb", "report-trusted.ipynb"])
def test_an_executed_notebook_shows_its_figures_without_running(lab, session, reports, name):
    page = session.page
    open_notebook(session, lab, name)
    figures = page.locator(FIGURES)
    wait_for(lambda: figures.count() >= reports)  # each figure output rendered as one of both
    for index in range(figures.count()):  # drawn, not an empty box
        figure = figures.nth(index)
        figure.scroll_into_view_if_needed()
        # plotly's extension draws the figure (an SVG, or its own snapshot of it, img.plot-img)
        drawn = figure.locator(".main-svg, img[src^='data:image/png']")
        wait_for(lambda drawn=drawn: drawn.count() > 0)
    # JupyterLab draws the plotly JSON itself, offline (its extension ships plotly.js)
    assert page.locator(".jp-OutputArea-output.jp-RenderedPlotly").count() == reports
    text = page.locator(".jp-Notebook").inner_text()
    assert "Error displaying widget" not in text and "Loading widget" not in text
    session.shot("report")
    assert session.errors == []
