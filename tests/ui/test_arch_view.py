"""ArchView draws a subnet against its supernet: active parts coloured, inactive greyed."""

from __future__ import annotations

import pytest

from nasviz import ConfigError
from nasviz.supernet import ElasticCNN, ElasticMLP
from nasviz.ui import ArchView
from nasviz.viz._arch import ACTIVE, INACTIVE, arch_info


def test_cnn_stages_show_depth_blocks_kernel_and_expand():
    net = ElasticCNN()
    arch = net.space.smallest()
    info = arch_info(arch, net.space)
    assert info.columns == len(arch.group("depth")) and info.column_label == "stage"
    assert [a for a, _ in info.blocks] == list(arch.group("depth"))
    assert {c.dim for c in info.cells} == {"kernel", "expand"}
    view = ArchView(arch, net)
    fills = [s.fillcolor for s in view.widget.layout.shapes]
    top = max(net.space.dims["depth.0"])
    assert fills.count(INACTIVE) == sum(top - d for d in arch.group("depth"))


def test_mlp_layers_beyond_depth_are_greyed():
    net = ElasticMLP()
    arch = net.space.smallest()
    info = arch_info(arch, net.space)
    active = [c.active for c in info.cells]
    assert active == [i < arch["depth"] for i in range(info.columns)]
    view = ArchView(net.space.largest(), net)
    assert all(c.active for c in view.info.cells)
    view.show(arch)
    assert view.arch == arch and any(s.fillcolor == ACTIVE for s in view.widget.layout.shapes)


def test_bad_input():
    with pytest.raises(ConfigError, match="needs a supernet or a SearchSpace"):
        ArchView({"depth": 2}, object())
    net = ElasticMLP()
    with pytest.raises(ValueError, match="not allowed"):
        ArchView({**net.space.smallest(), "depth": 99}, net)
