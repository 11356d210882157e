"""Notebooks as reproducible pipeline steps (papermill), and the ``nasviz`` command line.

* :func:`run_notebook` — one notebook with checked parameters and provenance (``nasviz run``).
* :func:`run_pipeline` — train_supernet -> search -> compress_best -> report, resuming from the
  first incomplete step (``nasviz pipeline``); :func:`begin_step` / :func:`finish_step` are what
  step notebooks call to check their inputs and record their outputs, and
  :func:`prepare_resumable` lets a step resume its own interrupted work (the search's journal).
* :func:`resolve_notebook` — nasviz's notebooks by name, from a wheel or a source checkout.
* :func:`notice` — what a notebook must tell its reader, shown in the notebook and printed in
  the terminal of ``nasviz run``.
"""

from __future__ import annotations

from nasviz.pipeline._chain import STEPS, Step, begin_step, finish_step, read_manifest, run_pipeline
from nasviz.pipeline._cli import main
from nasviz.pipeline._locate import available_notebooks, notebooks_dir, resolve_notebook
from nasviz.pipeline._notebook import notebook_parameters, provenance, run_notebook
from nasviz.pipeline._notice import notice
from nasviz.pipeline._resume import prepare_resumable

__all__ = [
    "STEPS",
    "Step",
    "available_notebooks",
    "begin_step",
    "finish_step",
    "main",
    "notebook_parameters",
    "notebooks_dir",
    "notice",
    "prepare_resumable",
    "provenance",
    "read_manifest",
    "resolve_notebook",
    "run_notebook",
    "run_pipeline",
]
