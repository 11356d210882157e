"""Every notebook runs headless under papermill with non-default parameters.

(nbval runs the same notebooks with their defaults: see the Makefile's test target.)
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from nasviz.pipeline import available_notebooks, notebooks_dir

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
    "pipeline/1_train_supernet.ipynb": None,
    "pipeline/2_search.ipynb": None,
    "pipeline/3_compress_best.ipynb": None,
    "pipeline/4_report.ipynb": None,
}


# notebooks that display nasviz widgets: the static figure each executed copy must hold, so
# that it reads as a report without a live kernel (trace names/types and title texts to find)
STATIC_FIGURES: dict[str, list[dict]] = {
    "01_supernet.ipynb": [  # the TrainingMonitor
        {"names": {"largest", "smallest"}, "text": r"^Training loss per sandwich member"}
    ],
    "03_pareto.ipynb": [{"names": {"Pareto front", "hypervolume"}}],  # the search dashboard
    "04_prune.ipynb": [{"types": {"heatmap"}, "text": r"kept weights|where the masks disagree"}],
    "05_moe.ipynb": [{"types": {"heatmap"}, "text": r"^Expert load per layer"}],
}


def _html_figures(html: str) -> list[dict]:
    """The figures a static plotly HTML draws (``Plotly.newPlot(id, data, layout, ...)``)."""
    decoder, comma, figures = json.JSONDecoder(), re.compile(r"\s*,\s*"), []
    for call in re.finditer(r"Plotly\.newPlot\(\s*", html):
        pos, args = call.end(), []
        for _ in range(3):  # div id, data, layout
            value, pos = decoder.raw_decode(html, pos)
            args.append(value)
            pos = comma.match(html, pos).end()
        figures.append({"data": args[1], "layout": args[2]})
    return figures


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
    # every live widget leaves a static figure beside it, so the executed notebook reads as a report
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    nasviz_views = [o for o in widgets if "text/html" in o["data"]]
    for output in nasviz_views:
        assert (
            "plotly" in output["data"]["text/html"].lower()
            or "<pre>" in output["data"]["text/html"]
        )
    figures = [f for o in nasviz_views for f in _html_figures(o["data"]["text/html"])]
    for expected in STATIC_FIGURES.get(name, []):
        assert any(_matches(f, expected) for f in figures), (
            f"{name}: no static figure with {expected}; found {[_texts(f)[0] for f in figures]}"
        )
    if name == "00_tour.ipynb":
        written = (tmp_path / "tour_out" / "tour_objectives.csv").read_text().splitlines()
        assert written[0] == "objective,direction,value" and len(written) == 4


def test_static_figures_are_recognized():
    """The figure check itself: it finds a plotly HTML figure and tells figures apart."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(z=[[0, 1]], name="mask"), layout={"title": "Expert load per layer (fraction)"}
    )
    fig.add_annotation(text="w0 (4, 4): kept weights (exact bits)", showarrow=False)
    [found] = _html_figures(fig.to_html(include_plotlyjs="cdn", full_html=False))
    assert _matches(found, STATIC_FIGURES["05_moe.ipynb"][0])
    assert _matches(found, STATIC_FIGURES["04_prune.ipynb"][0])
    assert not _matches(found, STATIC_FIGURES["03_pareto.ipynb"][0])
    assert not _matches(found, STATIC_FIGURES["01_supernet.ipynb"][0])
