"""Every committed notebook is exactly what its generator writes (``notebooks/_make_*.py``).

The generators run from a copy of notebooks/ in a temporary folder (each writes beside its own
``__file__``), so the checkout is never touched; each committed .ipynb must then equal the
regenerated one, cell ids included (``_nb.write`` derives them from the notebook and position).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nasviz.pipeline import available_notebooks, notebooks_dir

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
GENERATORS = sorted(p.name for p in NOTEBOOKS.glob("_make_*.py"))


def _committed() -> list[str]:
    """Every committed notebook (``runs/`` folders hold executed copies, not notebooks)."""
    assert notebooks_dir() == NOTEBOOKS
    return [f"{name}.ipynb" for name in available_notebooks()]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """A copy of notebooks/ holding only the generators and what they write when run."""
    copy = tmp_path_factory.mktemp("generated") / "notebooks"
    copy.mkdir()
    for source in NOTEBOOKS.glob("*.py"):
        shutil.copy(source, copy / source.name)
    # one interpreter for all generators (importing nbformat alone takes seconds)
    script = (
        "import runpy, sys\n"
        "for generator in sys.argv[1:]:\n"
        "    runpy.run_path(generator, run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *GENERATORS],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(copy)},
    )
    assert done.returncode == 0, f"a generator failed:\n{done.stderr[-2000:]}"
    return copy


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _without_ids(cells: list[dict]) -> list[dict]:
    return [{k: v for k, v in cell.items() if k != "id"} for cell in cells]


def test_there_are_generators_for_the_notebooks():
    assert "_make_pipeline.py" in GENERATORS and "_make_00_tour.py" in GENERATORS


@pytest.mark.parametrize("name", _committed())
def test_committed_notebook_matches_its_generator(regenerated, name):
    fresh = regenerated / name
    assert fresh.is_file(), f"no notebooks/_make_*.py writes {name}"
    committed = NOTEBOOKS / name
    if fresh.read_bytes() == committed.read_bytes():
        return
    new, old = _cells(fresh), _cells(committed)
    assert len(new) == len(old), f"{name}: {len(old)} cells committed, generator writes {len(new)}"
    for index, (a, b) in enumerate(zip(_without_ids(new), _without_ids(old), strict=True)):
        assert a == b, f"{name}: cell {index} differs from what its generator writes"
    assert [c.get("id") for c in new] == [c.get("id") for c in old], (
        f"{name}: cell ids differ (random ids?); regenerate it through notebooks/_nb.py's write()"
    )
    assert json.loads(fresh.read_text()) == json.loads(committed.read_text()), (
        f"{name}: notebook metadata differs from what its generator writes"
    )
    pytest.fail(f"{name}: same content, different bytes (formatting); regenerate it")


def test_cell_ids_are_stable_and_valid(regenerated):
    sys.path.insert(0, str(regenerated))
    try:
        from _nb import cell_id
    finally:
        sys.path.remove(str(regenerated))
    assert cell_id("1_train_supernet", 3) == "1_train_supernet-03"
    assert cell_id("a b.c" * 20, 7).endswith("-07") and len(cell_id("x" * 99, 7)) <= 64
    ids = [c["id"] for c in _cells(regenerated / "00_tour.ipynb")]
    assert ids == [cell_id("00_tour", i) for i in range(len(ids))]
