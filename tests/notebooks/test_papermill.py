"""Every notebook runs headless under papermill with non-default parameters, and the executed
copy reads as a report: every figure (nasviz views included) as plotly JSON plus a PNG, no
widget outputs, no HTML loading plotly from a CDN, a small file; nbconvert's HTML shows the
figures as images.

(nbval runs the same notebooks with their defaults: see the Makefile's test target.)
"""

from __future__ import annotations

import ast
import base64
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest
from nbconvert import HTMLExporter

from nasviz.pipeline import available_notebooks, notebooks_dir
from nasviz.pipeline._notice import NOTICE_MIME

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"

# Non-default parameters for each notebook; every notebook must be listed here. Pipeline steps
# need the previous steps' outputs: they run as a chain with non-default parameters in
# tests/test_pipeline_chain.py (None here).
NON_DEFAULT: dict[str, dict | None] = {
    "00_tour.ipynb": {"seed": 3, "n_samples": 2, "out_dir": "tour_out"},
    "01_supernet.ipynb": {"seed": 1, "epochs": 5},
    "02_search.ipynb": {"strategy": "random", "budget": 8, "seed": 1, "storage": "search.journal"},
    "03_pareto.ipynb": {"seed": 1, "budget": 12, "strategy": "random", "workers": 1},
    "04_prune.ipynb": {"seed": 1, "epochs": 5, "lottery_rounds": 2},
    "05_moe.ipynb": {"seed": 1, "epochs": 3, "keep": 3},
    "06_your_model.ipynb": {"model": "llama", "seed": 1, "epochs": 1, "budget": 4},
    "07_quantize.ipynb": {"seed": 1, "epochs": 5, "search_budget": 8, "sensitivity_bits": 3},
    "08_hf_compress.ipynb": {
        "seed": 1,
        "method": "taylor",
        "head_sparsity": 0.75,
        "drop_layers": 0,
        "keep_experts": 3,
        "out_dir": "compressed",
    },
    "pipeline/1_train_supernet.ipynb": None,
    "pipeline/2_search.ipynb": None,
    "pipeline/3_compress_best.ipynb": None,
    "pipeline/4_report.ipynb": None,
}


# the figures each executed copy must hold, so that it reads as a report without a live kernel
# (trace names/types and title texts to find): nasviz views' static figures and plain figures
STATIC_FIGURES: dict[str, list[dict]] = {
    "01_supernet.ipynb": [  # the TrainingMonitor
        {"names": {"largest", "smallest"}, "text": r"^Training loss per sandwich member"}
    ],
    "02_search.ipynb": [
        {"names": {"Pareto front"}, "text": r"^Pareto front — 8 evaluated"},
        {"names": {"hypervolume"}, "text": r"^Hypervolume \(share of the reference box\)"},
    ],
    "03_pareto.ipynb": [  # the search dashboards and the explorer
        {"names": {"Pareto front", "hypervolume"}, "text": r"^Pareto front — 12 evaluated"},
        {"names": {"Pareto front", "best within budget"}, "text": r"^Pareto explorer"},
    ],
    "04_prune.ipynb": [
        {"types": {"heatmap"}, "text": r"kept weights|where the masks disagree"},
        {"names": {"channels", "magnitude", "Pareto front"}, "text": r"^Searched subnets"},
    ],
    "05_moe.ipynb": [
        {"types": {"heatmap"}, "text": r"^Expert load per layer"},
        {"names": {"merged (1 group)", "Pareto front"}, "text": r"^Search results and variants"},
    ],
    "06_your_model.ipynb": [  # the converted Llama's fine-tuning and its search
        {"names": {"largest", "smallest"}, "text": r"^Training loss per sandwich member"},
        {"names": {"Pareto front", "hypervolume"}, "text": r"^Pareto front — 4 evaluated"},
    ],
    "07_quantize.ipynb": [{"names": {"Pareto front", "hypervolume"}}],  # the joint search
    "08_hf_compress.ipynb": [{"types": {"heatmap", "bar"}, "text": r"^Head importance"}],
}
#: The biggest executed notebook allowed (03_pareto's papermill copy was 15.6 MB of widget
#: state: plotly's front-end module once per figure widget)
MAX_BYTES = 2_000_000
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"


def _figures(nb: nbformat.NotebookNode) -> list[dict]:
    """The plotly figures the notebook's outputs hold (as JSON)."""
    return [
        o["data"][PLOTLY]
        for c in nb.cells
        for o in c.get("outputs", [])
        if PLOTLY in o.get("data", {})
    ]


def _texts(figure: dict) -> list[str]:
    """The figure's title and annotation texts (subplot titles are annotations)."""
    layout = figure["layout"]
    title = layout.get("title", {})
    texts = [title.get("text", "") if isinstance(title, dict) else str(title)]
    return texts + [a.get("text", "") for a in layout.get("annotations", [])]


def _matches(figure: dict, expected: dict) -> bool:
    traces = figure["data"]
    return (
        expected.get("names", set()) <= {t.get("name") for t in traces}
        and expected.get("types", set()) <= {t.get("type", "scatter") for t in traces}
        and any(re.search(expected.get("text", ""), text) for text in _texts(figure))
    )


def _notebooks() -> list[str]:
    """Every committed notebook (``runs/`` folders hold executed copies, not notebooks)."""
    assert notebooks_dir() == NOTEBOOKS
    return [f"{name}.ipynb" for name in available_notebooks()]


def test_every_notebook_has_non_default_parameters_listed():
    assert set(_notebooks()) == set(NON_DEFAULT)


@pytest.mark.parametrize("name", _notebooks())
def test_notebook_has_one_parameters_cell_and_a_kernelspec(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit notebooks without outputs"
    )
    declared = papermill.inspect_notebook(str(NOTEBOOKS / name))
    assert set(NON_DEFAULT.get(name) or {}) <= set(declared)


@pytest.mark.notebook
@pytest.mark.parametrize("name", sorted(k for k, v in NON_DEFAULT.items() if v is not None))
def test_notebook_runs_under_papermill_with_non_default_parameters(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / Path(name).name
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(out),
        parameters=NON_DEFAULT[name],
        cwd=str(tmp_path),
        kernel_name="python3",
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assigned = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(injected[0].source).body
        if isinstance(node, ast.Assign)
    }
    assert assigned == NON_DEFAULT[name]
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # a report: every figure as plotly JSON and a PNG; no widget (nobody could use it), no HTML
    # pulling plotly.js from a CDN
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if WIDGET in o.get("data", {})]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert not [h for h in html if "plotly" in h.lower()]
    pictures = [o for o in outputs if PLOTLY in o.get("data", {})]
    for output in pictures:
        assert base64.b64decode(output["data"]["image/png"]).startswith(b"\x89PNG")
    figures = _figures(nb)
    for expected in STATIC_FIGURES.get(name, []):
        assert any(_matches(f, expected) for f in figures), (
            f"{name}: no static figure with {expected}; found {[_texts(f)[0] for f in figures]}"
        )
    size = out.stat().st_size
    assert size < MAX_BYTES, f"{name}: the executed notebook is {size / 1e6:.1f} MB"
    # no widget state: JupyterLab would ask the next kernel for each saved model ("No such comm")
    assert "widgets" not in nb.metadata
    # nbconvert's HTML (no JavaScript needed) shows every figure as an image
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert page.count('src="data:image/png;base64,') >= len(pictures)
    assert "cdn.plot.ly" not in page
    if name == "02_search.ipynb":  # no checkpoint here: the stand-in supernet is said out loud
        [said] = [
            o["data"][NOTICE_MIME]["message"] for o in outputs if NOTICE_MIME in o.get("data", {})
        ]
        assert "trained here for one epoch only" in said
    if name == "00_tour.ipynb":
        written = (tmp_path / "tour_out" / "tour_objectives.csv").read_text().splitlines()
        assert written[0] == "objective,direction,value" and len(written) == 4


def test_static_figures_are_recognized():
    """The figure check itself: it finds a plotly figure and tells figures apart."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(z=[[0, 1]], name="mask"), layout={"title": "Expert load per layer (fraction)"}
    )
    fig.add_annotation(text="w0 (4, 4): kept weights (exact bits)", showarrow=False)
    output = nbformat.v4.new_output("display_data", data={PLOTLY: json.loads(fig.to_json())})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fig", outputs=[output])])
    [found] = _figures(nb)
    assert _matches(found, STATIC_FIGURES["05_moe.ipynb"][0])
    assert _matches(found, STATIC_FIGURES["04_prune.ipynb"][0])
    assert not _matches(found, STATIC_FIGURES["03_pareto.ipynb"][0])
    assert not _matches(found, STATIC_FIGURES["01_supernet.ipynb"][0])
