"""The MaskViewer in JupyterLab, in a real browser: its canvas draws, the sparsity slider, the
method picker, zooming and diff mode redraw it, and the browser logs no errors.

Pixels are read from the canvas with ``getImageData``: ``ink`` counts pixels that are not
white, ``rows`` the pixel rows with any ink, ``darkness`` sums how dark they are (kept weights
are dark blue), ``red`` counts diff pixels (disagreeing weights are red), and ``digest``
changes whenever any pixel does.
"""

from __future__ import annotations

import re
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from .conftest import open_notebook, run_all

pytestmark = pytest.mark.browser

VIEWER = ".jp-OutputArea-output:has(.nasviz-mask)"

PIXELS_JS = """(canvas) => {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const inkedRows = new Set();
  let ink = 0, darkness = 0, red = 0, digest = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
    if (r < 250 || g < 250 || b < 250) {
      ink++;
      inkedRows.add(Math.floor(i / 4 / canvas.width));
    }
    darkness += 765 - r - g - b;
    if (r > 200 && g < 180 && b < 180) red++;
    digest = (Math.imul(digest, 31) + r * 65536 + g * 256 + b) | 0;
  }
  return {ink, darkness, red, digest, rows: inkedRows.size, width: canvas.width,
          height: canvas.height};
}"""

# A small seeded model whose first layer (1000 x 700 weights) is too big for exact bits, so
# the canvas starts with density tiles; nothing is trained.
SMALL = """
import torch
from nasviz import prune
from nasviz.ui import MaskViewer

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(700, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 10)
)
viewer = MaskViewer(
    prune.magnitude(model, 0.3), model=model, other=prune.random(model, 0.3), layer="0.weight"
)
viewer
"""


def _pixels(viewer) -> dict:
    return viewer.locator("canvas").evaluate(PIXELS_JS)


def _wait_for_new_pixels(page, viewer, before: dict, timeout_ms: int = 60_000) -> dict:
    handle = viewer.locator("canvas").element_handle()
    page.wait_for_function(
        f"([c, d]) => ({PIXELS_JS})(c).digest !== d",
        arg=[handle, before["digest"]],
        timeout=timeout_ms,
    )
    return _pixels(viewer)


def _summary(viewer) -> str:
    return viewer.locator(".widget-html").first.inner_text()


def _window(info: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The ``rows a–b, cols c–d`` the canvas says it shows."""
    found = re.search(r"rows (\d+)–(\d+), cols (\d+)–(\d+)", info)
    assert found, info
    r0, r1, c0, c1 = map(int, found.groups())
    return (r0, r1), (c0, c1)


def _saved_viewer_outputs(path) -> list[dict]:
    """The output bundles of MaskViewers in the notebook saved at ``path``."""
    saved = nbformat.read(path, as_version=4)
    return [
        out["data"]
        for cell in saved.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
        and "sparsity per layer" in out["data"].get("text/html", "")
    ]


def _no_tracebacks(page) -> None:
    errors = page.query_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    tracebacks = [e.inner_text() for e in errors if "Traceback" in e.inner_text()]
    assert not tracebacks, tracebacks[0][-2000:]


def _drag_slider(page, viewer, fraction: float) -> None:
    """Drags the sparsity slider's handle to ``fraction`` of its track, like a user."""
    slider = viewer.locator(".widget-slider").filter(has_text="sparsity")
    track = slider.locator(".noUi-target").bounding_box()
    handle = slider.locator(".noUi-handle").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    y = track["y"] + track["height"] / 2
    target = track["x"] + fraction * track["width"]
    for step in range(1, 6):
        page.mouse.move(handle["x"] + (target - handle["x"]) * step / 5, y)
    page.mouse.up()


def test_prune_notebook_renders_the_mask_viewer(lab, session):
    page = session.page
    open_notebook(session, lab, "04_prune.ipynb")
    run_all(session, timeout_ms=300_000)
    _no_tracebacks(page)
    viewer = page.locator(VIEWER)
    viewer.scroll_into_view_if_needed()
    session.shot("viewer")
    pixels = _pixels(viewer)
    assert pixels["ink"] > 0.05 * pixels["width"] * pixels["height"], pixels
    assert "weights kept" in _summary(viewer)
    info = viewer.locator(".nasviz-mask-info").inner_text()
    assert "dark = kept" in info
    assert viewer.locator(".js-plotly-plot .bars path").count() > 0

    # the slider re-prunes the notebook's model live; diff mode compares with the ERK masks
    summary = _summary(viewer)
    _drag_slider(page, viewer, 0.95)
    pruned = _wait_for_new_pixels(page, viewer, pixels)
    session.shot("slider")
    assert _summary(viewer) != summary and pruned["darkness"] < pixels["darkness"]
    viewer.locator(".widget-toggle-button", has_text="diff").click()
    assert _wait_for_new_pixels(page, viewer, pruned)["red"] > 0
    session.shot("diff")

    # saved, the notebook keeps the static figure next to the live widget
    page.click(".jp-NotebookPanel-toolbar [data-command='docmanager:save']")
    deadline = time.monotonic() + 30
    while not (bundles := _saved_viewer_outputs(lab.root / "04_prune.ipynb")):
        assert time.monotonic() < deadline, "the notebook was not saved with its outputs"
        time.sleep(0.5)
    assert len(bundles) == 1 and "Plotly.newPlot" in bundles[0]["text/html"]
    assert session.errors == []


def test_mask_viewer_controls_redraw_the_canvas(lab, session):
    page = session.page
    nb = new_notebook(cells=[new_code_cell(SMALL.strip())])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, lab.root / "mask_viewer_browser.ipynb")
    open_notebook(session, lab, "mask_viewer_browser.ipynb")
    run_all(session)
    _no_tracebacks(page)
    viewer = page.locator(VIEWER)
    viewer.locator("canvas").wait_for()
    info = viewer.locator(".nasviz-mask-info")

    # the canvas draws the magnitude mask of the big layer as density tiles
    start = _pixels(viewer)
    assert start["ink"] > 0.5 * start["width"] * start["height"], start
    assert start["red"] == 0
    assert "density tiles" in info.inner_text() and "1000×700" in info.inner_text()
    readout = (
        viewer.locator(".widget-slider").filter(has_text="sparsity").locator(".widget-readout")
    )
    assert readout.inner_text() == "0.30"
    summary = _summary(viewer)
    assert "sparsity 30.0%" in summary

    # dragging the slider right re-prunes in the kernel: fewer kept weights, a lighter canvas
    _drag_slider(page, viewer, 0.9)
    pruned = _wait_for_new_pixels(page, viewer, start)
    session.shot("slider")
    assert readout.inner_text() != "0.30"
    assert float(readout.inner_text()) > 0.6
    assert _summary(viewer) != summary and "sparsity 30.0%" not in _summary(viewer)
    assert pruned["darkness"] < start["darkness"]

    # the method picker re-prunes whole neurons: rows of the grid go blank
    viewer.get_by_label("method", exact=True).select_option("channels")
    rows = _wait_for_new_pixels(page, viewer, pruned)
    session.shot("channels")
    assert "channels" in _summary(viewer)
    assert rows["ink"] > 0

    # the mouse wheel zooms down to exact bits; double-click goes back to the whole layer
    box = viewer.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 3)
    before = _pixels(viewer)
    for _ in range(3):
        page.mouse.wheel(0, -100)
    page.wait_for_function("(el) => el.innerText.includes('exact bits')", arg=info.element_handle())
    zoomed = _pixels(viewer)
    session.shot("zoomed")
    assert zoomed["digest"] != before["digest"] and zoomed["ink"] > 0
    assert box["width"] == pytest.approx(zoomed["width"] + 2, abs=1)  # drawn 1:1, not squeezed
    # zoomed about the pointer: the region under it stays in view
    rows, cols = _window(info.inner_text())
    assert rows[0] < 1000 / 3 < rows[1] and cols[0] < 700 / 3 < cols[1]

    # dragging pans the zoomed view
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    panned = _window(info.inner_text())
    assert panned[0][0] < rows[0] and panned[1][0] < cols[0]
    assert _pixels(viewer)["digest"] != zoomed["digest"]
    viewer.locator("canvas").dblclick()
    page.wait_for_function(
        "(el) => el.innerText.includes('density tiles')", arg=info.element_handle()
    )
    assert _pixels(viewer)["digest"] == before["digest"]

    # diff mode paints where the two masks disagree in red
    viewer.locator(".widget-toggle-button", has_text="diff").click()
    diff = _wait_for_new_pixels(page, viewer, before)
    session.shot("diff")
    assert diff["red"] > 0 and "disagree" in info.inner_text()
    viewer.locator(".widget-toggle-button", has_text="mask").click()
    back = _wait_for_new_pixels(page, viewer, diff)
    assert back["red"] == 0 and back["digest"] == before["digest"]

    # clicking a layer's bar shows that layer
    bar = viewer.locator(".js-plotly-plot .bars .point path").nth(1).bounding_box()
    page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
    page.wait_for_function("(el) => el.innerText.startsWith('2.weight')", arg=info.element_handle())
    session.shot("layer")
    assert "10×1000" in info.inner_text()
    # 10 rows fill the canvas's height (stretched, not drawn as 10 thin lines)
    layer = _pixels(viewer)
    assert layer["rows"] == layer["height"], layer
    assert viewer.get_by_label("layer", exact=True).input_value() == "2.weight"

    _no_tracebacks(page)
    assert session.errors == []
