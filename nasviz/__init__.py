"""nasviz: a Jupyter-first workbench for efficient neural networks.

The core (spaces, supernets, search, pruning, MoE analysis) never imports a widget library;
widgets live in :mod:`nasviz.ui` and are re-exported here lazily, so ``import nasviz`` stays
light and works headless.
"""

from __future__ import annotations

import importlib
from typing import Any

from nasviz import data, objectives
from nasviz.errors import (
    CheckpointError,
    ConfigError,
    MaskError,
    MoEError,
    NasvizError,
    NasvizWarning,
    PipelineError,
    RunError,
    ShapeError,
    SpaceError,
    StorageError,
    TrainingError,
)
from nasviz.objectives import Objective, accuracy, latency, macs, params
from nasviz.runner import Engine, Event, Run, RunStatus
from nasviz.space import Arch, SearchSpace

__version__ = "0.1.0"

# name -> module that defines it; imported on first access (keeps `import nasviz` fast and
# keeps widget libraries out of the core).
_LAZY: dict[str, str] = {
    "ElasticCNN": "nasviz.supernet",
    "ElasticMLP": "nasviz.supernet",
    "ElasticTransformer": "nasviz.supernet",
    "train_supernet": "nasviz.supernet",
    "recalibrate": "nasviz.supernet",
    "load_supernet": "nasviz.supernet",
    "recover": "nasviz.training",
    "train": "nasviz.training",
    "Masks": "nasviz.prune",
    "RoutingHeatmap": "nasviz.ui",
    "RoutingRecorder": "nasviz.moe",
    "RoutingStats": "nasviz.moe",
    "SearchDashboard": "nasviz.ui",
    "ParetoExplorer": "nasviz.ui",
    "ArchView": "nasviz.ui",
    "TrainingMonitor": "nasviz.ui",
    "SupernetBuilder": "nasviz.ui",
    "Search": "nasviz.search",
    "MaskViewer": "nasviz.ui",
    "ImportanceView": "nasviz.ui",
    "HardwareProfile": "nasviz.hardware",
    "latency_table": "nasviz.hardware",
}
# subpackages imported on first access: `nasviz.prune.magnitude(...)` works after `import nasviz`
_SUBPACKAGES = (
    "export",
    "hardware",
    "hf",
    "moe",
    "pipeline",
    "prune",
    "quant",
    "search",
    "supernet",
    "training",
    "ui",
    "viz",
)

__all__ = [
    "Arch",
    "CheckpointError",
    "ConfigError",
    "Engine",
    "Event",
    "MaskError",
    "MoEError",
    "NasvizError",
    "NasvizWarning",
    "Objective",
    "PipelineError",
    "Run",
    "RunError",
    "RunStatus",
    "SearchSpace",
    "ShapeError",
    "SpaceError",
    "StorageError",
    "TrainingError",
    "__version__",
    "accuracy",
    "data",
    "latency",
    "macs",
    "objectives",
    "params",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"nasviz.{name}")
    else:
        raise AttributeError(f"module 'nasviz' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))
