"""Every notebook runs headless under papermill with non-default parameters.

(nbval runs the same notebooks with their defaults: see the Makefile's test target.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"

# Non-default parameters for each notebook; every notebook must be listed here. Pipeline steps
# need the previous steps' outputs: they run as a chain with non-default parameters in
# tests/test_pipeline_chain.py (None here).
NON_DEFAULT: dict[str, dict | None] = {
    "00_tour.ipynb": {"seed": 3, "n_samples": 2},
    "01_supernet.ipynb": {"seed": 1, "epochs": 5},
    "02_search.ipynb": {"strategy": "random", "budget": 8, "seed": 1},
    "03_pareto.ipynb": {"seed": 1, "budget": 12, "strategy": "random", "workers": 1},
    "04_prune.ipynb": {"seed": 1, "epochs": 5, "lottery_rounds": 2},
    "05_moe.ipynb": {"seed": 1, "epochs": 3, "keep": 3},
    "pipeline/1_train_supernet.ipynb": None,
    "pipeline/2_search.ipynb": None,
    "pipeline/3_compress_best.ipynb": None,
    "pipeline/4_report.ipynb": None,
}


# notebooks that display nasviz widgets: how many static figures their executed copy must hold
STATIC_FIGURES = {"03_pareto.ipynb": 3, "04_prune.ipynb": 1, "05_moe.ipynb": 1}


def _notebooks() -> list[str]:
    return sorted(
        str(p.relative_to(NOTEBOOKS))
        for p in NOTEBOOKS.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )


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
    if name in STATIC_FIGURES:
        assert len(nasviz_views) >= STATIC_FIGURES[name]
