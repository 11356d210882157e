"""05_moe in JupyterLab: clicking a routing heatmap cell lists the tokens routed there; the drop
control redraws the heatmap with the re-routed load and scores the pruned copy on demand."""

from __future__ import annotations

import re

import pytest

from .conftest import open_notebook, run_all, wait_for

pytestmark = pytest.mark.browser


def test_routing_heatmap_cell_click_and_drop_control(lab, session):
    page = session.page
    open_notebook(session, lab, "05_moe.ipynb")
    run_all(session, timeout_ms=420_000)
    cell = (
        page.locator(".jp-CodeCell")
        .filter(has=page.locator(".jp-InputArea", has_text="heatmap = RoutingHeatmap(stats"))
        .first
    )
    plot = cell.locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    assert plot.locator(".heatmaplayer, .hm").count() >= 1  # the heatmap is drawn
    listing = cell.locator(".widget-html").filter(has_text="click a cell")
    assert listing.count() == 1
    area = plot.locator("rect.nsewdrag").first.bounding_box()
    x, y = area["x"] + area["width"] * 0.1, area["y"] + area["height"] * 0.5
    page.mouse.move(x, y)
    hover = wait_for(
        lambda: (
            plot.locator(".hovertext").count() and plot.locator(".hovertext").first.text_content()
        )
    )
    page.mouse.click(x, y)
    text = cell.locator(".widget-html").filter(has_text="assignments")
    wait_for(lambda: text.count() == 1)
    listed = text.text_content()
    hovered = re.search(r"(\S+), expert (\d+): [\d.]+ \((\d+) tokens\)", hover)
    clicked = re.search(r"(\S+), expert (\d+): (\d+) assignments", listed)
    assert hovered and clicked, (hover, listed)
    assert clicked.groups() == hovered.groups()  # the listing is exactly the clicked cell's
    assert text.locator("table tr").count() > 1  # a table of tokens
    session.shot("heatmap-clicked")

    # drop expert 1 of the first layer: the heatmap shows the re-routed load, no model runs yet
    cell.locator(".widget-select-multiple select").select_option(label="expert 1")
    cell.locator("button", has_text="drop experts").click()
    title = plot.locator(".gtitle")
    wait_for(lambda: "dropped" in (title.text_content() or ""))
    assert "experts [1]" in title.text_content()
    result = cell.locator(".widget-html").filter(has_text="change first choice")
    wait_for(lambda: result.count() == 1)
    assert "press accuracy change" in result.text_content()
    assert "accuracy_after" not in result.text_content()
    plot.scroll_into_view_if_needed()  # the token listing above pushed it up
    area = plot.locator("rect.nsewdrag").first.bounding_box()
    page.mouse.move(area["x"] + area["width"] * (0.5 / 4), area["y"] + area["height"] * 0.25)
    rerouted = wait_for(
        lambda: (
            plot.locator(".hovertext").count()
            and "after drop" in plot.locator(".hovertext").first.text_content()
            and plot.locator(".hovertext").first.text_content()
        )
    )
    assert re.search(r"expert 0: [\d.]+ \(\d+% after drop \(\d+% before\)\)", rerouted), rerouted
    session.shot("dropped")
    button = cell.locator("button", has_text="accuracy change")
    assert button.is_enabled()
    button.click()
    wait_for(lambda: "points)" in result.text_content(), timeout=120)
    assert re.search(r"accuracy [\d.]+% \([+-][\d.]+ points\)", result.text_content())
    assert "accuracy_after" in result.text_content()  # the table gained the accuracy columns
    session.shot("accuracy")
    assert session.errors == []
