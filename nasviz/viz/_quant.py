"""Quantization figures: per-layer sensitivity bars and the bit-allocation strip.

Compute (``nasviz.quant.sensitivity``, ``describe``, ``QuantSupernet.bits_of``), then info
(small records the tests assert on), then a plotly figure, or an inline SVG for the strip (what
ArchView and the explorer embed). Every figure says whether its kernels are real or simulated.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go

from nasviz.viz._static import Figure

__all__ = [
    "BIT_COLORS",
    "BitStripInfo",
    "SensitivityInfo",
    "arch_part",
    "bit_color",
    "bit_strip_figure",
    "bit_strip_info",
    "bit_strip_svg",
    "sensitivity_figure",
    "sensitivity_info",
    "stack_svg",
    "with_bit_strip",
]

#: bits -> colour (fewer bits: warmer).
BIT_COLORS = {
    2: "#d62728",
    3: "#f4a261",
    4: "#e9c46a",
    8: "#2a9d8f",
    16: "#457b9d",
    32: "#adb5bd",
}


def bit_color(bits: int) -> str:
    """The colour of a bit-width (grey for anything unknown)."""
    return BIT_COLORS.get(int(bits), "#6c757d")


class SensitivityInfo(NamedTuple):
    layers: tuple[str, ...]
    drops: tuple[float, ...]
    accuracy: tuple[float, ...]
    baseline: float
    bits: int
    kernel: str


def sensitivity_info(frame: pd.DataFrame) -> SensitivityInfo:
    """The bars of :func:`nasviz.quant.sensitivity`'s frame, in its row order."""
    if frame.empty:
        return SensitivityInfo((), (), (), float("nan"), 0, "simulated")
    return SensitivityInfo(
        tuple(map(str, frame["layer"])),
        tuple(float(v) for v in frame["drop"]),
        tuple(float(v) for v in frame["accuracy"]),
        float(frame["baseline"].iat[0]),
        int(frame["bits"].iat[0]),
        str(frame["kernel"].iat[0]),
    )


def sensitivity_figure(info: SensitivityInfo) -> Figure:
    """Horizontal bars: accuracy drop (points) with each layer alone quantized."""
    fig = Figure(
        go.Bar(
            x=list(info.drops),
            y=list(info.layers),
            orientation="h",
            marker_color=[bit_color(2) if d > 1.0 else bit_color(info.bits) for d in info.drops],
            customdata=list(info.accuracy),
            hovertemplate="%{y}: drop %{x:.2f} points (accuracy %{customdata:.2f}%)<extra></extra>",
        )
    )
    fig.update_layout(
        title=(
            f"Accuracy drop with one layer at {info.bits} bits ({info.kernel}); "
            f"full precision {info.baseline:.2f}%"
        ),
        xaxis_title="accuracy drop (points)",
        yaxis={"autorange": "reversed", "title": "layer"},
        height=max(260, 22 * len(info.layers) + 120),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        template="nasviz",
    )
    return fig


class BitStripInfo(NamedTuple):
    layers: tuple[str, ...]
    bits: tuple[int, ...]
    weights: tuple[int, ...]  # 1 each when unknown (equal widths)
    kernels: tuple[str, ...]
    mean_bits: float  # weighted by weights


def bit_strip_info(
    bits: Mapping[str, int] | pd.DataFrame, weights: Mapping[str, int] | None = None
) -> BitStripInfo:
    """Layers in order with their bits, from ``{layer: bits}`` (e.g. ``QuantSupernet.bits_of``
    or ``QuantSpace.bits_of``) or from :func:`nasviz.quant.describe`'s frame (which also gives
    weights and kernels)."""
    if isinstance(bits, pd.DataFrame):
        layers = tuple(map(str, bits["layer"]))
        widths = tuple(int(b) for b in bits["bits"])
        sizes = tuple(int(w) for w in bits["weights"]) if "weights" in bits else (1,) * len(layers)
        kernels = (
            tuple(map(str, bits["kernel"])) if "kernel" in bits else ("simulated",) * len(layers)
        )
    else:
        layers = tuple(bits)
        widths = tuple(int(b) for b in bits.values())
        sizes = tuple(int((weights or {}).get(n, 1)) for n in layers)
        kernels = tuple("float" if b == 32 else "simulated" for b in widths)
    total = sum(sizes)
    mean = sum(b * s for b, s in zip(widths, sizes, strict=True)) / total if total else 0.0
    return BitStripInfo(layers, widths, sizes, kernels, mean)


def bit_strip_figure(info: BitStripInfo, title: str = "") -> Figure:
    """One horizontal strip: a segment per layer (width by weights), coloured by bits."""
    fig = Figure()
    start = 0.0
    shown: set[int] = set()
    for layer, b, w, k in zip(info.layers, info.bits, info.weights, info.kernels, strict=True):
        fig.add_trace(
            go.Bar(
                x=[w],
                y=["bits"],
                base=[start],
                orientation="h",
                name=f"{b} bits",
                legendgroup=str(b),
                showlegend=b not in shown,
                marker={"color": bit_color(b), "line": {"color": "white", "width": 1}},
                hovertemplate=f"{html.escape(layer)}: {b} bits, {w:,} weights ({k})<extra></extra>",
            )
        )
        shown.add(b)
        start += w
    kinds = sorted(set(info.kernels) - {"float"}) or ["float"]
    fig.update_layout(
        title=title or f"Bits per layer (mean {info.mean_bits:.2f}; {', '.join(kinds)})",
        barmode="overlay",
        height=170,
        xaxis={"title": "weights", "showgrid": False},
        yaxis={"showticklabels": False},
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        template="nasviz",
    )
    return fig


def bit_strip_svg(info: BitStripInfo, title: str = "", width: float = 480.0) -> str:
    """The strip as an inline SVG: one ``<rect class="bits" data-layer=... data-bits=...>`` per
    layer, widths by weights, with a ``<title>`` tooltip each and a legend of the bits used."""
    left, top, height = 6.0, 24.0, 22.0
    total = sum(info.weights) or 1
    inner = width - 2 * left
    used = sorted(set(info.bits))
    full = width
    svg_h = top + height + 26
    kinds = sorted(set(info.kernels) - {"float"}) or ["float"]
    heading = title or f"bits per layer: mean {info.mean_bits:.2f} ({', '.join(kinds)})"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="nasviz-bits" width="{full:.0f}" '
        f'height="{svg_h:.0f}" viewBox="0 0 {full:.0f} {svg_h:.0f}" font-family="sans-serif" '
        'role="img">',
        f'<text x="{left:.1f}" y="15" font-size="12" fill="#222">{html.escape(heading)}</text>',
    ]
    x = left
    for layer, b, w, k in zip(info.layers, info.bits, info.weights, info.kernels, strict=True):
        seg = inner * w / total
        parts.append(
            f'<rect class="bits" data-layer="{html.escape(layer)}" data-bits="{b}" '
            f'x="{x:.2f}" y="{top:.1f}" width="{max(seg, 0.5):.2f}" height="{height:.1f}" '
            f'fill="{bit_color(b)}" stroke="white" stroke-width="0.5">'
            f"<title>{html.escape(layer)}: {b} bits ({k})</title></rect>"
        )
        x += seg
    lx = left
    for b in used:
        parts.append(
            f'<rect x="{lx:.1f}" y="{top + height + 8:.1f}" width="10" height="10" '
            f'fill="{bit_color(b)}"/><text x="{lx + 13:.1f}" y="{top + height + 17:.1f}" '
            f'font-size="11" fill="#222">{b}</text>'
        )
        lx += 40
    parts.append("</svg>")
    return "".join(parts)


def arch_part(arch: Mapping[str, Any], space: Any, net: Any) -> tuple[Mapping[str, Any], Any]:
    """The architecture part of a joint arch + bits ``arch`` and its space, for drawing: the
    wrapped supernet's own dimensions when ``net`` is a :class:`~nasviz.quant.QuantSupernet`
    over a supernet (its bits go to the strip instead); ``(arch, space)`` otherwise."""
    if not callable(getattr(net, "bits_of", None)):
        return arch, space
    base = getattr(getattr(net, "net", None), "space", None)
    names = getattr(base, "names", None)
    if not names or not all(n in arch for n in names):
        return arch, space
    return {n: arch[n] for n in names}, base


_SIZE = re.compile(r'<svg\b[^>]*?\bwidth="([\d.]+)"[^>]*?\bheight="([\d.]+)"')


def stack_svg(*svgs: str) -> str:
    """One SVG with the given SVGs (each with a numeric width and height on its root element)
    stacked top to bottom, left aligned; one valid document (``image/svg+xml``)."""
    sizes = []
    for svg in svgs:
        found = _SIZE.search(svg)
        if found is None:
            raise ValueError("stack_svg needs SVGs with numeric width and height attributes")
        sizes.append((float(found.group(1)), float(found.group(2))))
    width = max(w for w, _ in sizes)
    height = sum(h for _, h in sizes)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="nasviz-stack" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">'
    ]
    y = 0.0
    for svg, (_, h) in zip(svgs, sizes, strict=True):
        parts.append(f'<g transform="translate(0,{y:.0f})">{svg}</g>')
        y += h
    parts.append("</svg>")
    return "".join(parts)


def with_bit_strip(svg: str, net: Any, arch: Mapping[str, Any]) -> str:
    """``svg`` (an arch picture) with the bit-allocation strip of ``arch`` below it when
    ``net`` chooses bits per layer (has ``bits_of``, like :class:`~nasviz.quant.QuantSupernet`);
    ``svg`` unchanged otherwise."""
    bits_of = getattr(net, "bits_of", None)
    if not callable(bits_of):
        return svg
    found = _SIZE.search(svg)
    width = float(found.group(1)) if found else 480.0
    return stack_svg(svg, bit_strip_svg(bit_strip_info(bits_of(arch)), width=width))
