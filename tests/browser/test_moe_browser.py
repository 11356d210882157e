"""05_moe in JupyterLab: clicking a routing heatmap cell lists the tokens routed there; the drop
control redraws the heatmap with the re-routed load and scores the pruned copy on demand; every
view sets its own colour scale (after the sequence view the load is back on 0 .. 2x uniform);
the log console stays clean."""

from __future__ import annotations

import re

import pytest

from .conftest import (
    NOTEBOOK_RUN_MS,
    click_when_enabled,
    open_notebook,
    readme_image,
    run_all,
    wait_for,
)

#: The colour range plotly actually uses for the heatmap, and its colour bar's title.
SCALE = "el => [el._fullData[0].zmin, el._fullData[0].zmax, el._fullData[0].colorbar.title.text]"

# notebooks run in a real kernel: on a loaded machine that takes several times nbval's budget
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1800)]


def test_routing_heatmap_cell_click_and_drop_control(lab, session):
    page = session.page
    open_notebook(session, lab, "05_moe.ipynb")
    run_all(session, timeout_ms=NOTEBOOK_RUN_MS)
    cell = (
        page.locator(".jp-CodeCell")
        .filter(has=page.locator(".jp-InputArea", has_text="heatmap = RoutingHeatmap(stats"))
        .first
    )
    plot = cell.locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    # the heatmap is drawn (a loaded browser may still be loading plotly when the cells end)
    wait_for(lambda: plot.locator(".heatmaplayer, .hm").count() >= 1, timeout=180)
    listing = cell.locator(".widget-html").filter(has_text="click a cell")
    wait_for(lambda: listing.count() == 1)
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
    hovered = re.search(r"(\S+), expert (\d+): [\d.]+% \((\d+) tokens\)", hover)
    clicked = re.search(r"(\S+), expert (\d+): (\d+) assignments", listed)
    assert hovered and clicked, (hover, listed)
    assert clicked.groups() == hovered.groups()  # the listing is exactly the clicked cell's
    assert text.locator("table tr").count() > 1  # a table of tokens
    session.shot("heatmap-clicked")

    # drop expert 1 of the first layer: the heatmap shows the re-routed load, no model runs yet
    cell.locator(".widget-select-multiple select").select_option(label="expert 1")
    assert click_when_enabled(cell.locator("button", has_text="drop experts"))
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
    assert re.search(r"expert 0: [\d.]+% \(\d+% after drop \(\d+% before\)\)", rerouted), rerouted
    session.shot("dropped")
    button = cell.locator("button", has_text="accuracy change")
    assert click_when_enabled(button)
    wait_for(lambda: "points)" in result.text_content(), timeout=120)
    assert re.search(r"accuracy [\d.]+% \([+-][\d.]+ points\)", result.text_content())
    assert "accuracy_after" in result.text_content()  # the table gained the accuracy columns
    session.shot("accuracy")

    # the sequence view has its own colours; back on the load view, the load's scale is back
    plot.scroll_into_view_if_needed()
    picker = cell.get_by_label("view", exact=True)
    picker.select_option(label="sequence")
    wait_for(lambda: plot.evaluate(SCALE)[2] == "expert")
    picker.select_option(label="layer x expert load")
    wait_for(lambda: plot.evaluate(SCALE)[2] == "share")
    zmin, zmax, _ = plot.evaluate(SCALE)
    assert zmin == 0 and zmax >= 0.5  # from 0, up to twice the uniform share of 4 experts
    session.shot("load-again")
    readme_image(session, cell.locator(".jp-OutputArea").first, "routing-heatmap")
    assert session.errors == [] and session.log_console() == []
