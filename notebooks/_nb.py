"""Builds our notebooks from Python: ``python notebooks/_make_<name>.py`` rewrites the .ipynb.

Notebooks are generated so that they stay reviewable as code; commit the generated .ipynb
(without outputs) together with its generator. Generation is deterministic: cell ids derive
from the notebook's name and the cell's position, so regenerating an unchanged generator
reproduces the committed file byte for byte (tests/notebooks/test_generators.py checks that).
"""

from __future__ import annotations

import re
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


def cell_id(stem: str, index: int) -> str:
    """A stable nbformat cell id (``[A-Za-z0-9_-]{1,64}``): ``"<notebook stem>-<index>"``."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", stem)[:56]
    return f"{safe}-{index:02d}"


def write(path: str | Path, cells: list) -> Path:
    """Writes a notebook with our kernelspec and stable cell ids; returns its path."""
    path = Path(path)
    for index, cell in enumerate(cells):
        cell["id"] = cell_id(path.stem, index)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
