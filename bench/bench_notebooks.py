"""Every notebook with Binder's limits in mind: wall time on one CPU and the kernel's peak memory.

Targets: <= 60 s per notebook (the tour <= 120 s) and <= 1.5 GB peak (mybinder restarts kernels
past 2 GB). Pipeline steps run in order in one folder, as ``nasviz pipeline`` does. A notebook
that fails is reported as such (NaN, target not met, the error in words), and the others still run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._report import Figure

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def _measure(notebook: Path, cwd: Path) -> dict:
    """``{"wall_s", "peak_mb"}``, or ``{"error": ...}`` when the notebook failed."""
    out = subprocess.run(
        [sys.executable, "-m", "bench._run_notebook", str(notebook), str(cwd)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        return {
            "error": next((x for x in reversed(lines) if "Error" in x), lines[-1] if lines else "")
        }
    return json.loads(out.stdout.strip().splitlines()[-1])


def _figures(name: str, m: dict, limit: int) -> list[Figure]:
    failed = "error" in m
    note = f"FAILED: {m['error'][:120]}" if failed else None
    wall, peak = (math.nan, math.nan) if failed else (m["wall_s"], m["peak_mb"])
    return [
        Figure(
            f"notebooks.{name}.wall_s",
            wall,
            "s",
            note or "papermill on one CPU, default parameters",
            f"<= {limit}",
            not failed and wall <= limit,
        ),
        Figure(
            f"notebooks.{name}.peak_mb",
            peak,
            "MB",
            note or "largest process RSS (the kernel)",
            "<= 1536",
            not failed and peak <= 1536,
        ),
    ]


def run() -> list[Figure]:
    figures = []
    standalone = sorted(NOTEBOOKS.glob("*.ipynb"))
    chain = sorted((NOTEBOOKS / "pipeline").glob("*.ipynb"))
    with tempfile.TemporaryDirectory() as tmp:
        for notebook in [*standalone, *chain]:
            cwd = Path(tmp) / ("pipeline" if notebook in chain else notebook.stem)
            cwd.mkdir(exist_ok=True)
            name = notebook.stem if notebook in standalone else f"pipeline.{notebook.stem}"
            limit = 120 if notebook.stem == "00_tour" else 60
            figures += _figures(name, _measure(notebook, cwd), limit)
    return figures
