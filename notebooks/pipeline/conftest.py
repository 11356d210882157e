"""nbval and the pipeline steps: every step notebook passes on its own, in any order.

nbval runs each notebook in notebooks/pipeline/ with its defaults, in a kernel whose working
folder is this one, so the steps share ``runs/pipeline/`` here (git-ignored), as they do for a
person running them in JupyterLab. A step reads the steps before it: when their outputs are
missing or stale (the step collected alone, ``-k``, another order), they are produced first with
``run_pipeline(..., until=<previous step>)``, exactly as ``nasviz pipeline`` would. Collected in
order 1 -> 4 (the usual ``make test``), nothing extra runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# the steps' outputs (executed notebooks included) are results, not notebooks to test
collect_ignore_glob = ["runs/*"]
_prepared: set[Path] = set()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    notebook = Path(str(item.path))
    if notebook.suffix != ".ipynb" or notebook.parent != HERE or notebook in _prepared:
        return
    _prepared.add(notebook)
    from nasviz.errors import PipelineError
    from nasviz.pipeline import STEPS, begin_step, notebook_parameters, run_pipeline

    names = [s.notebook for s in STEPS]
    if notebook.name not in names or names.index(notebook.name) == 0:
        return
    step = STEPS[names.index(notebook.name)]
    out = HERE / ast.literal_eval(notebook_parameters(notebook)["out_dir"]["default"])
    try:
        begin_step(out, step.name)  # only checks (and writes nothing) for a step with inputs
    except PipelineError:
        run_pipeline(out, until=STEPS[names.index(notebook.name) - 1].name)
