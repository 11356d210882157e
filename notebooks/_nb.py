"""Builds our notebooks from Python: ``python notebooks/_make_<name>.py`` rewrites the .ipynb.

Notebooks are generated so that they stay reviewable as code; commit the generated .ipynb
(without outputs) together with its generator.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str):
    """A markdown cell (leading/trailing blank lines dropped)."""
    return new_markdown_cell(text.strip("\n"))


def code(text: str, *tags: str):
    """A code cell, optionally tagged (``"parameters"``, ``"nbval-ignore-output"``, ...)."""
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def params(text: str):
    """The one cell tagged ``parameters`` that papermill overrides."""
    return code(text, "parameters")


def write(path: str | Path, cells: list) -> Path:
    """Writes a notebook with our kernelspec; returns its path."""
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    path = Path(path)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path
