"""Every notebook with Binder's limits in mind: wall time on one CPU and the kernel's peak memory.

Targets: <= 60 s per notebook (the tour <= 120 s) and <= 1.5 GB peak (mybinder restarts kernels
past 2 GB). Pipeline steps run in order in one folder, as ``nasviz pipeline`` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._report import Figure

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def _measure(notebook: Path, cwd: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench._run_notebook", str(notebook), str(cwd)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> list[Figure]:
    figures = []
    standalone = sorted(NOTEBOOKS.glob("*.ipynb"))
    chain = sorted((NOTEBOOKS / "pipeline").glob("*.ipynb"))
    with tempfile.TemporaryDirectory() as tmp:
        for notebook in [*standalone, *chain]:
            cwd = Path(tmp) / ("pipeline" if notebook in chain else notebook.stem)
            cwd.mkdir(exist_ok=True)
            m = _measure(notebook, cwd)
            name = notebook.stem if notebook in standalone else f"pipeline.{notebook.stem}"
            limit = 120 if notebook.stem == "00_tour" else 60
            figures += [
                Figure(
                    f"notebooks.{name}.wall_s",
                    m["wall_s"],
                    "s",
                    "papermill on one CPU, default parameters",
                    f"<= {limit}",
                    m["wall_s"] <= limit,
                ),
                Figure(
                    f"notebooks.{name}.peak_mb",
                    m["peak_mb"],
                    "MB",
                    "largest process RSS (the kernel)",
                    "<= 1536",
                    m["peak_mb"] <= 1536,
                ),
            ]
    return figures
