"""A compact picture of one subnet against its supernet's space.

The picture is derived from the space alone: repeated dimensions (``kernel.0``, ``width.3``)
form columns (one per stage or layer), a depth-like dimension decides which columns or blocks
are active, and each value is drawn as a bar filled to its share of the dimension's largest
value. Inactive parts (layers past the depth) are greyed and say "skipped": their values do
not change the subnet.

* A scalar ``depth`` / ``layers`` dimension activates the first d columns (MLP, transformer).
* A repeated ``depth.i`` dimension gives column i that many active blocks out of its maximum
  (OFA-style CNN stages).
* A space without repeated dimensions (any plain search space) is one column with a bar per
  dimension.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, NamedTuple

from nasviz.space import SearchSpace

__all__ = ["ArchCell", "ArchInfo", "arch_info", "arch_svg"]

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
    if not groups:  # a flat space: one column, a bar per dimension
        shown = [n for n in scalars if n != depth_scalar]
        cells = [ArchCell(0, n, arch[n], _fraction(space, n, arch[n]), True) for n in shown]
        scalars = [n for n in scalars if n not in shown]
        columns, dims, label = (1, tuple(shown), "arch") if shown else (0, (), label)
    shown_scalars = tuple((n, arch[n]) for n in scalars)
    return ArchInfo(columns, dims, tuple(cells), tuple(blocks), shown_scalars, label)


def _rect(x: float, y: float, w: float, h: float, fill: str, stroke: str, cls: str) -> str:
    return (
        f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1"/>'
    )


def _text(x: float, y: float, text: str, color: str = "#222", size: int = 11, **extra: str) -> str:
    attrs = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in extra.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" fill="{color}" font-size="{size}"{attrs}>'
        f"{html.escape(text)}</text>"
    )


def arch_svg(info: ArchInfo, title: str = "") -> str:
    """The picture as an inline SVG (crisp at any zoom; no plotting library in the browser):
    columns left to right, a row of bars per dimension, depth blocks stacked below.

    Cells carry ``class="cell active"`` / ``"cell inactive"`` and ``data-dim``; depth blocks
    ``class="block on"`` / ``"block off"``."""
    col_w, row_h, block_h, left, top = 118.0, 30.0, 18.0, 8.0, 46.0
    block_rows = max((m for _, m in info.blocks), default=0)
    n_rows = len(info.dims)
    blocks_top = top + n_rows * row_h + 4
    width = left * 2 + max(info.columns, 1) * col_w
    height = blocks_top + block_rows * block_h + (22 if info.blocks else 0) + 6
    subtitle = "  ".join(f"{n}={v}" for n, v in info.scalars)
    heading = title + ("  —  " if title and subtitle else "") + subtitle
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="nasviz-arch" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'font-family="sans-serif" role="img">',
        f"<title>{html.escape(heading or 'architecture')}</title>",
        _text(left, 16, heading, size=13, font_weight="bold"),
    ]
    for col in range(info.columns):
        x = left + col * col_w + col_w / 2
        parts.append(_text(x, 36, f"{info.column_label} {col}", size=12, text_anchor="middle"))
    for cell in info.cells:
        x = left + cell.column * col_w + 4
        y = top + info.dims.index(cell.dim) * row_h
        w, h = col_w - 8, row_h - 6
        state = "active" if cell.active else "inactive"
        color = ACTIVE if cell.active else INACTIVE
        parts.append(_rect(x, y, w, h, "white", "#999", f"frame {state}"))
        share = min(cell.fraction, 1.0) if cell.active else 1.0  # a skipped layer: all grey
        bar = _rect(x, y, w * share, h, color, "none", f"cell {state}")
        parts.append(bar.replace("<rect ", f'<rect data-dim="{html.escape(cell.dim)}" ', 1))
        label = f"{cell.dim} {cell.value}" if cell.active else f"{cell.dim}: skipped"
        parts.append(
            _text(
                x + w / 2,
                y + h / 2 + 4,
                label,
                "#222" if cell.active else "#999",
                11,
                text_anchor="middle",
            )
        )
    for col, (active, most) in enumerate(info.blocks):
        x = left + col * col_w + 14
        for b in range(most):
            on = b < active
            y = blocks_top + b * block_h
            parts.append(
                _rect(
                    x,
                    y,
                    col_w - 28,
                    block_h - 4,
                    ACTIVE if on else INACTIVE,
                    "#777" if on else "#ccc",
                    "block on" if on else "block off",
                )
            )
        label_y = blocks_top + most * block_h + 12
        parts.append(
            _text(
                left + col * col_w + col_w / 2,
                label_y,
                f"depth {active}/{most}",
                text_anchor="middle",
            )
        )
    parts.append("</svg>")
    return "".join(parts)
