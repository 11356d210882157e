"""Numbers people can read: SI prefixes, units per objective, axis titles, hover and table text.

One place decides how a value of an objective is written, so the dashboard, the explorer, the
static figures and their tables all say ``19.7k MACs`` and ``97.1%`` alike. Units come from the
objective's name (``accuracy`` is a percentage in nasviz, ``macs`` counts multiply-accumulates,
``latency`` is in milliseconds, ``*_bytes`` in bytes); an unknown name gets no unit and plain
significant digits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "axis_format",
    "axis_title",
    "format_frame",
    "format_value",
    "hover_text",
    "labelled",
    "nice_bound",
    "si",
    "unit_of",
]

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))

#: name -> (unit written after values, whether the unit counts things: SI ticks on axes)
_UNITS: dict[str, tuple[str, bool]] = {
    "accuracy": ("%", False),
    "macs": ("MACs", True),
    "flops": ("FLOPs", True),
    "params": ("params", True),
    "nonzero_params": ("params", True),
    "latency": ("ms", False),
    "memory_bytes": ("B", True),
    "model_bytes": ("B", True),
    "bytes": ("B", True),
}


def unit_of(name: str) -> tuple[str, bool]:
    """``(unit, counts)`` of an objective or column name: ``("MACs", True)`` for ``macs``,
    ``("%", False)`` for ``accuracy`` (also ``accuracy_task_0``), ``("", False)`` when unknown."""
    key = name.lower()
    if key in _UNITS:
        return _UNITS[key]
    if key.startswith("accuracy"):
        return _UNITS["accuracy"]
    if key.endswith("_ms") or key.startswith("latency"):
        return _UNITS["latency"]
    if key.endswith("bytes"):
        return _UNITS["bytes"]
    return "", False


def si(value: float, digits: int = 3) -> str:
    """``19712 -> "19.7k"``, ``4.0e10 -> "40G"``, ``0.0123 -> "0.0123"`` (prefixes from a
    thousand up; smaller values keep ``digits`` significant digits)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    v = float(value)
    if not math.isfinite(v):
        return "∞" if v > 0 else "-∞"
    for scale, prefix in _PREFIXES:
        if abs(v) >= scale * (1 - 0.5 * 10**-digits):
            return f"{v / scale:.{digits}g}{prefix}"
    return f"{v:.{digits}g}"


def format_value(name: str, value: Any, digits: int = 3) -> str:
    """A value of objective (or column) ``name`` with its unit: ``"97.1%"``, ``"19.7k MACs"``,
    ``"0.412 ms"``, ``"12.3kB"``."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return "–"
    if isinstance(value, str | bool | np.bool_):
        return str(value)
    unit, counts = unit_of(name)
    if unit == "%":
        return f"{float(value):.{max(digits, 3)}g}%"
    if unit == "B":
        return f"{si(value, digits)}B"
    text = si(value, digits) if counts or abs(float(value)) >= 1e4 else f"{float(value):.{digits}g}"
    return f"{text} {unit}" if unit else text


def labelled(name: str, value: Any, digits: int = 3) -> str:
    """A value with its name: ``"MACs 19.7k"`` (the unit names counts), ``"accuracy 97.1%"``,
    ``"latency 0.412 ms"``, ``"loss 0.0123"``."""
    unit, counts = unit_of(name)
    if counts and unit != "B":
        return f"{unit} {si(value, digits)}" if value == value else f"{unit} –"
    return f"{name} {format_value(name, value, digits)}"


def axis_title(name: str, direction: str | None = None) -> str:
    """``"MACs (↓ better)"``, ``"accuracy (%, ↑ better)"``, ``"loss (↓ better)"``."""
    unit, counts = unit_of(name)
    if counts and unit != "B":  # MACs, params, FLOPs: the unit names the axis
        label, extras = unit, []
    else:
        label, extras = name, ([("bytes" if unit == "B" else unit)] if unit else [])
    if direction is not None:
        extras.append("↓ better" if direction == "minimize" else "↑ better")
    return f"{label} ({', '.join(extras)})" if extras else label


def axis_format(name: str) -> dict[str, Any]:
    """Axis properties for an objective: SI tick labels (``20k``, ``1.5M``) for counts."""
    _, counts = unit_of(name)
    if counts:
        return {"tickformat": "~s", "exponentformat": "SI"}
    return {"exponentformat": "SI"}


def nice_bound(value: float, direction: str, digits: int = 3) -> float:
    """``value`` rounded *outward* to ``digits`` significant digits: up for a minimized
    objective, down for a maximized one (a reference point that reads ``8.26``, not
    ``8.2527881040``, and still bounds every point)."""
    v = float(value)
    if v == 0 or not math.isfinite(v):
        return v
    step = 10 ** (math.floor(math.log10(abs(v))) - digits + 1)
    rounded = (math.ceil if direction == "minimize" else math.floor)(v / step) * step
    return float(f"{rounded:.{digits + 1}g}")


def hover_text(row: Mapping[str, Any], arch_cols: Sequence[str], objectives: Sequence[Any]) -> str:
    """``trial 12<br>accuracy 97.1% · MACs 19.7k<br>depth=2 width.0=64`` for hover labels."""
    metrics = " · ".join(
        labelled(o.name, row[o.name]) for o in objectives if pd.notna(row.get(o.name))
    )
    arch = " ".join(f"{c}={row[c]}" for c in arch_cols)
    return f"trial {int(row['trial'])}<br>{metrics}<br>{arch}"


def format_frame(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A copy of ``frame`` with the named (default: every numeric float) columns written as
    readable text (:func:`format_value`): for HTML tables, never for computing."""
    out = frame.copy()
    names = (
        columns
        if columns is not None
        else [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    )
    for name in names:
        out[name] = [format_value(name, v) for v in frame[name]]
    return out
