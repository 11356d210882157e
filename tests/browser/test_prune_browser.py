"""The MaskViewer in JupyterLab, in a real browser: its canvas draws, the sparsity slider, the
method picker, zooming and diff mode redraw it, errors are shown and undone, zoomed pixels are
the mask's exact bits, and the browser logs no errors.

Pixels are read from the canvas with ``getImageData``: ``ink`` counts pixels that are not
white, ``rows`` the pixel rows with any ink, ``darkness`` sums how dark they are (kept weights
are dark blue), ``red`` counts diff pixels (disagreeing weights are red), and ``digest``
changes whenever any pixel does. ``BITS_JS`` reads one pixel per cell of an exactly drawn
window; the test compares them with masks it computes itself from the same seeded model.
"""

from __future__ import annotations

import json
import re

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from nasviz import prune

from .conftest import NOTEBOOK_RUN_MS, drag_slider, open_notebook, readme_image, run_all, wait_for

# notebooks run in a real kernel: on a loaded machine that takes several times nbval's budget
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1800)]

VIEWERS = ".jp-OutputArea-output:has(.nasviz-mask)"
PLOTLY = "application/vnd.plotly.v1+json"


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

# One canvas pixel per cell of an exactly drawn window [r0, r1) x [c0, c1): the first pixel
# of each cell's block (pixel x shows cell floor(x * cells / width)); 1 = dark (kept or, in
# diff mode, disagreeing), 0 = white.
BITS_JS = """([canvas, r0, r1, c0, c1]) => {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const R = r1 - r0, C = c1 - c0, out = [];
  for (let i = 0; i < R; i++) {
    const y = Math.ceil((i * canvas.height) / R);
    let row = "";
    for (let j = 0; j < C; j++) {
      const x = Math.ceil((j * canvas.width) / C);
      const o = (y * canvas.width + x) * 4;
      row += d[o] + d[o + 1] + d[o + 2] < 600 ? "1" : "0";
    }
    out.push(row);
  }
  return out;
}"""

# A small seeded model whose first layer (1000 x 700 weights) is too big for exact bits, with
# a 4-neuron layer that channel pruning at 0.9 would empty; nothing is trained. The viewer
# opens zoomed by Python onto a window small enough for exact bits.
MODEL = """
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(700, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 4), torch.nn.ReLU(),
    torch.nn.Linear(4, 10)
)
"""
SMALL = f"""
import torch
from nasviz import prune
from nasviz.ui import MaskViewer
{MODEL}
viewer = MaskViewer(
    prune.magnitude(model, 0.3), model=model, other=prune.random(model, 0.3), layer="0.weight"
)
viewer.zoom((40, 160), (300, 390))
viewer
"""


def _model() -> torch.nn.Module:
    """The notebook's model, built here from the same seed."""
    scope: dict = {"torch": torch}
    exec(MODEL, scope)
    return scope["model"]


def _bits_on_canvas(viewer, window) -> np.ndarray:
    rows = viewer.locator("canvas").evaluate(BITS_JS_CALL, list(window))
    return np.array([[c == "1" for c in row] for row in rows], dtype=bool)


BITS_JS_CALL = f"(canvas, w) => ({BITS_JS})([canvas, ...w])"


def _info_window(info_text: str) -> tuple[int, int, int, int]:
    (r0, r1), (c0, c1) = _window(info_text)
    return r0, r1, c0, c1


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
        and "sparsity per layer" in json.dumps(out["data"].get(PLOTLY, {}))
    ]


def _no_tracebacks(page) -> None:
    errors = page.query_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    tracebacks = [e.inner_text() for e in errors if "Traceback" in e.inner_text()]
    assert not tracebacks, tracebacks[0][-2000:]


def _drag_slider(page, viewer, fraction: float) -> None:
    """Drags the sparsity slider's handle to ``fraction`` of its track, like a user."""
    drag_slider(page, viewer.locator(".widget-slider").filter(has_text="sparsity"), fraction)


def test_prune_notebook_renders_the_mask_viewers(lab, session):
    page = session.page
    open_notebook(session, lab, "04_prune.ipynb")
    run_all(session, timeout_ms=NOTEBOOK_RUN_MS)
    _no_tracebacks(page)
    viewers = page.locator(VIEWERS)
    assert viewers.count() == 2

    # the lottery viewer opens on where the first and the last round's tickets disagree
    lottery = viewers.nth(0)
    lottery.scroll_into_view_if_needed()
    assert _pixels(lottery)["red"] > 0
    assert "red = masks disagree" in lottery.locator(".nasviz-mask-info").inner_text()
    # its slider (disabled: no model to re-prune) keeps a readable width beside the controls
    track = lottery.locator(".widget-slider").filter(has_text="sparsity").locator(".noUi-target")
    assert track.bounding_box()["width"] >= 150

    viewer = viewers.nth(1)
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
    assert pruned["darkness"] < pixels["darkness"]
    wait_for(lambda: _summary(viewer) != summary)
    viewer.locator(".widget-toggle-button", has_text="diff").click()
    assert _wait_for_new_pixels(page, viewer, pruned)["red"] > 0
    session.shot("diff")
    readme_image(session, viewer, "mask-viewer")

    # saved, the notebook keeps a static figure next to each live widget
    page.click(".jp-NotebookPanel-toolbar [data-command='docmanager:save']")
    wait_for(lambda: len(_saved_viewer_outputs(lab.root / "04_prune.ipynb")) >= 2, timeout=30)
    bundles = _saved_viewer_outputs(lab.root / "04_prune.ipynb")
    # the static figure as plotly JSON (JupyterLab draws it where the widget cannot be shown),
    # never HTML loading plotly.js from a CDN
    assert len(bundles) == 2 and all("text/html" not in b for b in bundles)
    assert all(b[PLOTLY]["data"][0]["type"] == "bar" for b in bundles)
    assert session.errors == []


def _summary_says(page, viewer, text: str) -> None:
    """Waits until the Python-made summary contains ``text``."""
    page.wait_for_function(
        "([el, t]) => el.innerText.includes(t)",
        arg=[viewer.locator(".widget-html").first.element_handle(), text],
    )


def _method(viewer):
    return viewer.get_by_label("method", exact=True)


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
    viewer = page.locator(VIEWERS)
    viewer.locator("canvas").wait_for()
    info = viewer.locator(".nasviz-mask-info")
    model = _model()

    # Python zoomed in before display: the canvas draws exactly the bits of that window
    page.wait_for_function("(el) => el.innerText.includes('exact bits')", arg=info.element_handle())
    assert _info_window(info.inner_text()) == (40, 160, 300, 390)
    expected = prune.magnitude(model, 0.3)["0.weight"].numpy()[40:160, 300:390]
    assert np.array_equal(_bits_on_canvas(viewer, (40, 160, 300, 390)), expected)
    assert "rows 40–160, cols 300–390 (exact bits)" in _summary(viewer)
    session.shot("python-zoom")

    # double-click shows the whole layer as density tiles, and Python hears about it
    viewer.locator("canvas").dblclick()
    page.wait_for_function(
        "(el) => el.innerText.includes('density tiles')", arg=info.element_handle()
    )
    _summary_says(page, viewer, "showing the whole layer (density tiles)")
    start = _pixels(viewer)
    assert start["ink"] > 0.5 * start["width"] * start["height"], start
    assert start["red"] == 0
    assert "1000×700" in info.inner_text()
    readout = (
        viewer.locator(".widget-slider").filter(has_text="sparsity").locator(".widget-readout")
    )
    assert readout.inner_text() == "0.30"
    # a slider a person can drag: its track is not squeezed to a stub (it was about 60 px)
    track = viewer.locator(".widget-slider").filter(has_text="sparsity").locator(".noUi-target")
    assert track.bounding_box()["width"] >= 150
    summary = _summary(viewer)
    assert "sparsity 30.0%" in summary

    # dragging the slider right re-prunes in the kernel: fewer kept weights, a lighter canvas
    _drag_slider(page, viewer, 0.95)
    pruned = _wait_for_new_pixels(page, viewer, start)
    session.shot("slider")
    high = readout.inner_text()
    assert float(high) > 0.875  # round(ratio * 4) == 4
    wait_for(lambda: _summary(viewer) != summary and "sparsity 30.0%" not in _summary(viewer))
    assert pruned["darkness"] < start["darkness"]

    # channels at that ratio would empty the 4-neuron layer: the error shows, the picker goes
    # back, the canvas stays
    _method(viewer).select_option("channels")
    error = viewer.locator(".widget-html", has_text="failed")
    error.wait_for()
    session.shot("method-error")
    assert "would remove all 4 channels" in error.inner_text()
    page.wait_for_function("(el) => el.value === 'magnitude'", arg=_method(viewer).element_handle())
    assert _pixels(viewer)["digest"] == pruned["digest"] and readout.inner_text() == high

    # at a lower ratio the picker re-prunes whole neurons: rows of the grid go blank
    _drag_slider(page, viewer, 0.5)
    middle = _wait_for_new_pixels(page, viewer, pruned)
    ratio = float(readout.inner_text())
    _method(viewer).select_option("channels")
    rows = _wait_for_new_pixels(page, viewer, middle)
    session.shot("channels")
    wait_for(lambda: "channels" in _summary(viewer) and error.count() == 0)
    assert rows["ink"] > 0

    # a slider value that fails is shown too, and the slider goes back
    _drag_slider(page, viewer, 0.97)
    error.wait_for()
    page.wait_for_function(
        "([el, t]) => el.innerText === t", arg=[readout.element_handle(), f"{ratio:.2f}"]
    )
    session.shot("slider-error")
    assert _pixels(viewer)["digest"] == rows["digest"]

    # the mouse wheel zooms down to exact bits: the pixels are the channel mask's bits
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
    window = _info_window(info.inner_text())
    r0, r1, c0, c1 = window
    assert r0 < 1000 / 3 < r1 and c0 < 700 / 3 < c1  # zoomed about the pointer
    expected = prune.channels(model, ratio)["0.weight"].numpy()[r0:r1, c0:c1]
    assert np.array_equal(_bits_on_canvas(viewer, window), expected)
    assert not expected.all(axis=1).all() and expected.any()  # blank rows and kept ones
    _summary_says(page, viewer, f"rows {r0}–{r1}, cols {c0}–{c1} (exact bits)")  # Python knows

    # dragging pans the zoomed view
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    # the view panned up and left
    wait_for(lambda: (w := _window(info.inner_text()))[0][0] < r0 and w[1][0] < c0)
    wait_for(lambda: _pixels(viewer)["digest"] != zoomed["digest"])
    viewer.locator("canvas").dblclick()
    page.wait_for_function(
        "(el) => el.innerText.includes('density tiles')", arg=info.element_handle()
    )
    wait_for(lambda: _pixels(viewer)["digest"] == before["digest"])

    # diff mode paints where the two masks disagree in red
    viewer.locator(".widget-toggle-button", has_text="diff").click()
    diff = _wait_for_new_pixels(page, viewer, before)
    session.shot("diff")
    assert diff["red"] > 0 and "disagree" in info.inner_text()
    viewer.locator(".widget-toggle-button", has_text="mask").click()
    back = _wait_for_new_pixels(page, viewer, diff)
    assert back["red"] == 0 and back["digest"] == before["digest"]

    # clicking a layer's bar shows that layer
    bar = viewer.locator(".js-plotly-plot .bars .point path").nth(2).bounding_box()
    page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
    page.wait_for_function("(el) => el.innerText.startsWith('4.weight')", arg=info.element_handle())
    session.shot("layer")
    assert "10×4" in info.inner_text()
    # the classifier's 10 rows (none pruned) fill the canvas's height: stretched, not 10 lines
    layer = _pixels(viewer)
    assert layer["rows"] == layer["height"], layer
    assert viewer.get_by_label("layer", exact=True).input_value() == "4.weight"

    _no_tracebacks(page)
    assert session.errors == []
