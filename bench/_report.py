"""The one record every benchmark produces, and the table/JSON writers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured figure.

    Attributes:
        name: what was measured, e.g. ``"objectives.macs_time.10M"``.
        value: the number.
        unit: ``"s"``, ``"ms"``, ``"x"`` (a ratio), ``"evals"``, ...
        compared_with: what the value is measured against (a baseline run side by side in the
            same process, or a target), in words.
        target: the goal, in words (``"<= 1.10"``), or "" when informational.
        met: whether the target was met (None when there is no target).
    """

    name: str
    value: float
    unit: str
    compared_with: str = ""
    target: str = ""
    met: bool | None = None


def write_json(figures: list[Figure], path: Path) -> None:
    """Writes ``figures`` to ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps([asdict(f) for f in figures], indent=2) + "\n")
    tmp.replace(path)


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "target", "met", "compared with")]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.name, f"{f.value:.4g}", f.unit, f.target, met, f.compared_with))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
