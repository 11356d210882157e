"""The bit-allocation strip in ArchView and the Pareto explorer: a QuantSupernet's arch is drawn
as its supernet's picture with the layers' bits below it, in one valid SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd

from nasviz.quant import QuantSupernet, quant_space
from nasviz.supernet import ElasticCNN, ElasticMLP
from nasviz.ui import ArchView, ParetoExplorer
from nasviz.viz._quant import stack_svg


def _strip(svg: str) -> dict[str, int]:
    """layer -> bits of the strip's segments, in order."""
    found = re.findall(r'<rect class="bits" data-layer="([^"]+)" data-bits="(\d+)"', svg)
    return {layer: int(b) for layer, b in found}


def test_arch_view_of_a_quant_supernet_shows_the_bits_below_the_arch():
    net = ElasticMLP()
    qnet = QuantSupernet(net, quant_space(net, bits=(2, 4, 8)))
    first, second = qnet.sample(0), qnet.sample(1)
    view = ArchView(first, qnet, title="trial 3")
    svg = view.widget.value
    ET.fromstring(svg)  # one well-formed SVG document (image/svg+xml in saved notebooks)
    assert _strip(svg) == qnet.bits_of(first)
    assert {c.dim for c in view.info.cells} == {"width"}  # bits are not drawn as arch columns
    assert 'class="nasviz-arch"' in svg and "trial 3" in svg
    assert view.static_html() == svg
    view.show(second)
    assert _strip(view.widget.value) == qnet.bits_of(second)
    assert qnet.bits_of(first) != qnet.bits_of(second)  # the redraw is visible


def test_arch_view_of_a_plain_supernet_has_no_strip():
    net = ElasticCNN()
    svg = ArchView(net.space.smallest(), net).widget.value
    assert "nasviz-bits" not in svg and _strip(svg) == {}


def test_the_explorer_shows_the_strip_of_the_clicked_point():
    net = ElasticMLP()
    qnet = QuantSupernet(net, quant_space(net, bits=(2, 4, 8), granularity="block"))
    archs = qnet.sample(0, n=4)
    frame = pd.DataFrame(
        [
            {"trial": i, "state": "COMPLETE", **arch, "loss": 1.0 / (i + 1), "bytes": 10.0 * i}
            for i, arch in enumerate(archs)
        ]
    )
    explorer = ParetoExplorer(
        frame, objectives=[("loss", "minimize"), ("bytes", "minimize")], net=qnet
    )
    for trial in (2, 0):
        explorer.select([trial])
        (child,) = explorer.arch_box.children
        assert _strip(child.value) == qnet.bits_of(archs[trial])
        assert f"trial {trial}" in child.value


def test_stacked_svgs_keep_their_sizes_and_order():
    a = '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40"><text>a</text></svg>'
    b = '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="30"><text>b</text></svg>'
    svg = stack_svg(a, b)
    root = ET.fromstring(svg)
    assert (root.get("width"), root.get("height")) == ("100", "70")
    assert svg.index(">a<") < svg.index(">b<") and "translate(0,40)" in svg
