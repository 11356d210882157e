"""08_hf_compress in JupyterLab: the ImportanceView draws its layer x head heatmap with the
plan's removed heads marked, and dragging the heads slider re-plans in the kernel and redraws."""

from __future__ import annotations

import pytest

from .conftest import open_notebook, run_all, wait_for

pytestmark = pytest.mark.browser


def _marks(plot) -> int:
    """Heatmap cells drawn with the removed-head mark."""
    texts = plot.evaluate("el => [...el.querySelectorAll('text')].map(t => t.textContent).join('')")
    return texts.count("✕")


def test_importance_view_marks_the_plan_and_follows_its_slider(lab, session):
    page = session.page
    open_notebook(session, lab, "08_hf_compress.ipynb")
    run_all(session, timeout_ms=420_000)
    cell = (
        page.locator(".jp-CodeCell")
        .filter(has=page.locator(".jp-InputArea", has_text="view = ImportanceView("))
        .first
    )
    plot = cell.locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    # JupyterLab renders outputs scrolled into view lazily: wait for plotly to draw
    wait_for(lambda: plot.locator(".heatmaplayer, .hm").count() >= 1, timeout=120)
    title = plot.locator(".gtitle").text_content()
    assert title.startswith("Head importance (activation")
    # the default plan (half the heads, one layer dropped) marks 8 heads of the dropped layer
    # and 4 of each other layer of the tiny Llama (4 layers x 8 heads)
    wait_for(lambda: _marks(plot) == 8 + 3 * 4)
    summary = cell.locator(".widget-html").filter(has_text="heads_kept")
    assert summary.count() == 1
    session.shot("importance")

    slider = cell.locator(".widget-slider").filter(has_text="heads")
    track = slider.locator(".noUi-target").bounding_box()
    handle = slider.locator(".noUi-handle").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + 2, track["y"] + track["height"] / 2, steps=5)  # to 0: no heads
    page.mouse.up()
    wait_for(lambda: _marks(plot) == 8)  # only the dropped layer's heads stay marked
    assert "— the plan's removals marked" in plot.locator(".gtitle").text_content()
    session.shot("slider")
    assert session.errors == []
