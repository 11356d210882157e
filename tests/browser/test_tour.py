"""The tour notebook runs in JupyterLab in a real browser without console errors."""

from __future__ import annotations

import pandas as pd
import pytest

from .conftest import open_notebook, run_all

pytestmark = pytest.mark.browser


def test_tour_runs_in_jupyterlab(lab, session):
    open_notebook(session, lab, "00_tour.ipynb")
    run_all(session)
    text = session.page.inner_text(".jp-Notebook")
    assert "architectures" in text and "SpaceError:" in text
    assert "03_pareto" in text and "nasviz pipeline --out DIR" in text  # "Where next" renders
    errors = session.page.query_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    tracebacks = [e.inner_text() for e in errors if "Traceback" in e.inner_text()]
    assert not tracebacks
    # the measurements render as a table and land in the tour's output folder
    table = session.page.inner_text(".jp-RenderedHTMLCommon table.dataframe")
    measured = pd.read_csv(lab.root / "runs" / "00_tour" / "tour_objectives.csv")
    assert list(measured.objective) == ["params", "macs", "accuracy"]
    assert all(name in table for name in measured.objective)
    assert session.errors == []
