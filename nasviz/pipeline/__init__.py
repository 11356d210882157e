"""Notebooks as reproducible pipeline steps (papermill), and the ``nasviz`` command line.

* :func:`run_notebook` — one notebook with checked parameters and provenance (``nasviz run``).
* :func:`run_pipeline` — train_supernet -> search -> compress_best -> report, resuming from the
  first incomplete step (``nasviz pipeline``); :func:`begin_step` / :func:`finish_step` are what
  step notebooks call to check their inputs and record their outputs.
"""

from __future__ import annotations

from nasviz.pipeline._chain import STEPS, Step, begin_step, finish_step, read_manifest, run_pipeline
from nasviz.pipeline._cli import main
from nasviz.pipeline._notebook import (
    notebook_parameters,
    provenance,
    resolve_notebook,
    run_notebook,
)

__all__ = [
    "STEPS",
    "Step",
    "begin_step",
    "finish_step",
    "main",
    "notebook_parameters",
    "provenance",
    "read_manifest",
    "resolve_notebook",
    "run_notebook",
    "run_pipeline",
]
