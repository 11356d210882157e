"""03_pareto in JupyterLab: the dashboard renders and follows a live search, the explorer
responds to clicks and budget sliders — in a real browser."""

from __future__ import annotations

import re
import time

import pytest

from .conftest import open_notebook, run_all, wait_for

pytestmark = pytest.mark.browser


def _cell(page, text):
    """The notebook cell whose input contains ``text``."""
    return (
        page.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=text)).first
    )


def _points(output, plot_index):
    """Number of drawn scatter points in the plot_index-th plotly figure of a cell output."""
    return output.locator(".js-plotly-plot").nth(plot_index).locator(".scatterlayer .point").count()


def test_dashboard_explorer_in_the_browser(lab, session):
    page = session.page
    open_notebook(session, lab, "03_pareto.ipynb")
    run_all(session)

    live = _cell(page, "dashboard = SearchDashboard(search)")
    for name in ("Start", "Pause", "Resume", "Stop"):
        assert live.locator(f"button:has-text('{name}')").count() == 1
    live.scroll_into_view_if_needed()
    wait_for(lambda: "finished" in live.locator(".widget-html").first.text_content())
    assert _points(live, 0) > 0  # the Pareto scatter has points
    hv_curve = live.locator(".js-plotly-plot").nth(1).locator(".scatterlayer path.js-line")
    assert hv_curve.count() >= 1  # the hypervolume curve is drawn
    session.shot("dashboard")

    baseline = _cell(page, "SearchDashboard(baseline)")
    assert _points(baseline, 0) == 0
    baseline.locator("button:has-text('Start')").click()
    first = wait_for(lambda: _points(baseline, 0))
    wait_for(lambda: _points(baseline, 0) > first)  # new points arrive while it runs
    session.shot("baseline-running")
    baseline.locator("button:has-text('Stop')").click()
    wait_for(lambda: "stopped" in baseline.locator(".widget-html").first.text_content())
    time.sleep(1.0)
    settled = _points(baseline, 0)
    time.sleep(1.5)
    assert _points(baseline, 0) == settled  # no more points after the stop
    session.shot("baseline-stopped")

    explorer = _cell(page, "explorer = ParetoExplorer(search")
    plot = explorer.locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    front_point = plot.locator(".scatterlayer .trace").nth(1).locator(".point").first
    box = front_point.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)  # plotly's drag layer takes the events: hover, then click, by position
    time.sleep(0.3)
    page.mouse.click(x, y)
    details = explorer.locator(".widget-html").first
    wait_for(lambda: re.search(r"trial \d+", details.text_content()))
    trial = re.search(r"trial (\d+)", details.text_content()).group(1)
    arch_title = explorer.locator(".js-plotly-plot").nth(1).locator(".gtitle")
    wait_for(lambda: arch_title.count() and f"trial {trial}" in arch_title.first.text_content())
    session.shot("explorer-clicked")

    budget_text = explorer.locator(".widget-html").filter(has_text="best within budget")
    before = budget_text.text_content()
    readout = explorer.locator(".widget-slider .widget-readout").first
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("0")  # below every MACs value: the slider clamps to the cheapest subnet
    page.keyboard.press("Enter")
    wait_for(lambda: budget_text.text_content() != before)
    assert re.search(r"best within budget: trial \d+", budget_text.text_content())
    session.shot("explorer-budget")
    assert session.errors == []
