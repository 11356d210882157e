"""The package as a user meets it: version, a UI-free core, the public surface."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys

import nasviz


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
