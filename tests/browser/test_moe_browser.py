"""05_moe in JupyterLab: clicking a routing heatmap cell lists the tokens routed there."""

from __future__ import annotations

import re

import pytest

from .conftest import open_notebook, run_all, wait_for

pytestmark = pytest.mark.browser


def test_routing_heatmap_cell_click_lists_its_tokens(lab, session):
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
    assert session.errors == []
