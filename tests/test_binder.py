"""The Binder configuration installs CPU-only torch at the tested version, then nasviz."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_binder_pins_the_tested_cpu_torch():
    requirements = (ROOT / "binder" / "requirements.txt").read_text()
    constraints = (ROOT / "constraints.txt").read_text()
    tested = re.search(r"^torch==([\d.]+)$", constraints, re.M).group(1)
    assert re.search(rf"^torch=={re.escape(tested)}\+cpu$", requirements, re.M)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements


def test_post_build_installs_nasviz_and_is_executable():
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK)
    assert 'pip install --no-cache-dir -e ".[lab]"' in post.read_text()
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
