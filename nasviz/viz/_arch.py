"""A compact picture of one subnet against its supernet's space.

The picture is derived from the space alone: repeated dimensions (``kernel.0``, ``width.3``)
form columns (one per stage or layer), a depth-like dimension decides which columns or blocks
are active, and each value is drawn as a bar filled to its share of the dimension's largest
value. Inactive parts are greyed.

* A scalar ``depth`` / ``layers`` dimension activates the first d columns (MLP, transformer).
* A repeated ``depth.i`` dimension gives column i that many active blocks out of its maximum
  (OFA-style CNN stages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import plotly.graph_objects as go

from nasviz.space import SearchSpace

__all__ = ["ArchCell", "ArchInfo", "arch_figure", "arch_info"]

ACTIVE = "#2a9d8f"
INACTIVE = "#e0e0e0"
DEPTH_NAMES = ("depth", "layers", "num_layers")


class ArchCell(NamedTuple):
    """One drawn value: column (stage/layer), dimension, value, its share of the max, active?"""

    column: int
    dim: str
    value: Any
    fraction: float
    active: bool


class ArchInfo(NamedTuple):
    columns: int
    dims: tuple[str, ...]
    cells: tuple[ArchCell, ...]
    blocks: tuple[tuple[int, int], ...]  # per column: (active blocks, max blocks); empty if none
    scalars: tuple[tuple[str, Any], ...]  # dimensions that are not per column
    column_label: str


def _fraction(space: SearchSpace, name: str, value: Any) -> float:
    values = space.dims[name]
    if space.is_ordinal(name):
        top = max(abs(float(v)) for v in values) or 1.0
        return float(value) / top
    return (values.index(value) + 1) / len(values)


def arch_info(arch: Mapping[str, Any], space: SearchSpace) -> ArchInfo:
    """Lays out ``arch`` (validated against ``space``) as columns of bars."""
    arch = space.validate(arch)
    groups: dict[str, int] = {}
    scalars = []
    for name in space.names:
        base, _, index = name.rpartition(".")
        if base and index.isdigit():
            groups[base] = max(groups.get(base, 0), int(index) + 1)
        else:
            scalars.append(name)
    columns = max(groups.values(), default=0)
    depth_scalar = next((n for n in scalars if n in DEPTH_NAMES), None)
    active_cols = int(arch[depth_scalar]) if depth_scalar else columns
    blocks: list[tuple[int, int]] = []
    depth_group = next((g for g in groups if g in DEPTH_NAMES), None)
    if depth_group:
        top = int(max(space.dims[f"{depth_group}.0"]))
        blocks = [(int(arch[f"{depth_group}.{i}"]), top) for i in range(groups[depth_group])]
    cells = []
    dims = tuple(g for g in groups if g != depth_group)
    for col in range(columns):
        for dim in dims:
            name = f"{dim}.{col}"
            if name in arch:
                cells.append(
                    ArchCell(
                        col, dim, arch[name], _fraction(space, name, arch[name]), col < active_cols
                    )
                )
    label = "layer" if depth_scalar or not depth_group else "stage"
    shown_scalars = tuple((n, arch[n]) for n in scalars)
    return ArchInfo(columns, dims, tuple(cells), tuple(blocks), shown_scalars, label)


def arch_figure(info: ArchInfo, title: str = "") -> go.Figure:
    """Columns left to right; a row of bars per dimension; depth blocks stacked at the bottom."""
    fig = go.Figure()
    n_rows = len(info.dims)
    block_rows = max((m for _, m in info.blocks), default=0)
    for cell in info.cells:
        row = info.dims.index(cell.dim)
        y0 = block_rows + n_rows - row - 1
        color = ACTIVE if cell.active else INACTIVE
        fig.add_shape(
            type="rect",
            x0=cell.column + 0.05,
            x1=cell.column + 0.95,
            y0=y0 + 0.1,
            y1=y0 + 0.9,
            line={"color": "#999", "width": 1},
            fillcolor="white",
        )
        fig.add_shape(
            type="rect",
            x0=cell.column + 0.05,
            x1=cell.column + 0.05 + 0.9 * min(cell.fraction, 1.0),
            y0=y0 + 0.1,
            y1=y0 + 0.9,
            line={"width": 0},
            fillcolor=color,
        )
        fig.add_annotation(
            x=cell.column + 0.5,
            y=y0 + 0.5,
            text=f"{cell.dim} {cell.value}",
            showarrow=False,
            font={"size": 11, "color": "#222" if cell.active else "#999"},
        )
    for col, (active, top) in enumerate(info.blocks):
        for b in range(top):
            on = b < active
            fig.add_shape(
                type="rect",
                x0=col + 0.15,
                x1=col + 0.85,
                y0=block_rows - b - 0.9,
                y1=block_rows - b - 0.1,
                line={"color": "#777" if on else "#ccc"},
                fillcolor=ACTIVE if on else INACTIVE,
            )
        fig.add_annotation(
            x=col + 0.5, y=-0.35, text=f"depth {active}/{top}", showarrow=False, font={"size": 11}
        )
    for col in range(info.columns):
        fig.add_annotation(
            x=col + 0.5,
            y=block_rows + n_rows + 0.3,
            text=f"{info.column_label} {col}",
            showarrow=False,
            font={"size": 12},
        )
    subtitle = "  ".join(f"{n}={v}" for n, v in info.scalars)
    fig.update_layout(
        title=(title + ("  —  " if title and subtitle else "") + subtitle) or None,
        xaxis={"visible": False, "range": [0, max(info.columns, 1)]},
        yaxis={"visible": False, "range": [-0.7, block_rows + n_rows + 0.7]},
        template="plotly_white",
        height=90 + 45 * (n_rows + block_rows),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        showlegend=False,
    )
    return fig
