"""The package as a user meets it: version, a UI-free core, the public surface."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nasviz
from nasviz.errors import check_int, check_real, check_shape


def test_version_is_single_sourced():
    assert nasviz.__version__ == importlib.metadata.version("nasviz")


def test_import_nasviz_pulls_in_no_widget_or_plot_library():
    code = (
        "import json, sys, nasviz; "
        "print(json.dumps(sorted(m for m in ('ipywidgets', 'plotly', 'IPython', 'anywidget') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_every_public_name_resolves():
    for name in nasviz.__all__:
        assert getattr(nasviz, name) is not None, name
    ui = importlib.import_module("nasviz.ui")
    for name in ui.__all__:
        assert getattr(ui, name) is not None, name


def test_errors_are_value_or_runtime_errors():
    for name in (
        "SpaceError",
        "ConfigError",
        "ShapeError",
        "CheckpointError",
        "StorageError",
        "MaskError",
        "MoEError",
    ):
        assert issubclass(getattr(nasviz, name), ValueError), name
    for name in ("RunError", "PipelineError"):
        assert issubclass(getattr(nasviz, name), RuntimeError), name


def test_shared_argument_checks_accept_numpy_and_refuse_lookalikes():
    assert check_int("n", np.int64(3), 1) == 3 and type(check_int("n", np.int64(3))) is int
    for bad in (True, 2.0, "2", None):
        with pytest.raises(nasviz.ConfigError, match=r"n must be an int >= 1, got"):
            check_int("n", bad, 1)
    with pytest.raises(nasviz.SpaceError, match="n must be an int >= 1, got 0"):
        check_int("n", 0, 1, nasviz.SpaceError)
    assert check_real("p", np.float32(0.5)) == 0.5 and check_real("p", 2) == 2.0
    for bad in (False, "0.5", float("nan"), float("inf")):
        with pytest.raises(nasviz.ConfigError, match="p must be a"):
            check_real("p", bad)
    assert check_shape("s", torch.Size([2, 3])) == (2, 3) == check_shape("s", [np.int64(2), 3])
    for bad in ("23", (2, 0), (2, True), (2.0, 3), 5):
        with pytest.raises(nasviz.ShapeError, match="s must be a tuple of positive ints"):
            check_shape("s", bad)


def test_test_modules_have_unique_basenames():
    # pytest's default import mode imports test modules by basename: two files called
    # test_x.py in different folders make collection fail on a clean checkout.
    tests = Path(__file__).parent
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)
