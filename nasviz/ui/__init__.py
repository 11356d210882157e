"""Widgets: thin views over nasviz core objects (ipywidgets 8, plotly FigureWidget, anywidget).

A widget is built from a core object (a Search, a results DataFrame, Masks, RoutingStats, a
training Run) and only reads it or calls its public methods. Every widget also leaves a static
figure in the notebook's output, so executed (papermill) and reopened notebooks still show it.
"""

from __future__ import annotations

import importlib
from typing import Any

# widget name -> defining module, imported on first use
_LAZY: dict[str, str] = {
    "ArchView": "nasviz.ui._arch",
    "ImportanceView": "nasviz.ui._importance",
    "MaskViewer": "nasviz.ui._masks",
    "ParetoExplorer": "nasviz.ui._explorer",
    "RoutingHeatmap": "nasviz.ui._routing",
    "SearchDashboard": "nasviz.ui._dashboard",
    "SupernetBuilder": "nasviz.ui._builder",
    "TrainingMonitor": "nasviz.ui._training",
}

__all__ = [*_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nasviz.ui' has no attribute {name!r}")
