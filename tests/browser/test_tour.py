"""The tour notebook runs in JupyterLab in a real browser without console errors."""

from __future__ import annotations

import pytest

from .conftest import open_notebook, run_all

pytestmark = pytest.mark.browser


def test_tour_runs_in_jupyterlab(lab, session):
    open_notebook(session, lab, "00_tour.ipynb")
    run_all(session)
    text = session.page.inner_text(".jp-Notebook")
    assert "architectures" in text and "SpaceError:" in text
    errors = session.page.query_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    tracebacks = [e.inner_text() for e in errors if "Traceback" in e.inner_text()]
    assert not tracebacks
    assert session.errors == []
