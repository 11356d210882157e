"""ArchView draws a subnet against its supernet: active parts coloured, inactive greyed."""

from __future__ import annotations

import re

import pytest

from nasviz import ConfigError
from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer
from nasviz.ui import ArchView
from nasviz.viz._arch import arch_info


def _cells(svg: str) -> list[tuple[str, str]]:
    """(state, dim) of every bar drawn, in order."""
    return re.findall(r'<rect data-dim="([^"]+)" class="cell (active|inactive)"', svg)


def test_cnn_stages_show_depth_blocks_kernel_and_expand():
    net = ElasticCNN()
    arch = net.space.smallest()
    info = arch_info(arch, net.space)
    assert info.columns == len(arch.group("depth")) and info.column_label == "stage"
    assert [a for a, _ in info.blocks] == list(arch.group("depth"))
    assert {c.dim for c in info.cells} == {"kernel", "expand"}
    view = ArchView(arch, net, title="trial 7")
    svg = view.widget.value
    top = max(net.space.dims["depth.0"])
    assert svg.count('class="block off"') == sum(top - d for d in arch.group("depth"))
    assert svg.count('class="block on"') == sum(arch.group("depth"))
    assert "trial 7" in svg and "stage 2" in svg
    assert view.static_html() == svg  # the saved notebook shows the same picture


def test_mlp_layers_beyond_depth_are_greyed():
    net = ElasticMLP()
    arch = net.space.smallest()
    info = arch_info(arch, net.space)
    active = [c.active for c in info.cells]
    assert active == [i < arch["depth"] for i in range(info.columns)]
    view = ArchView(net.space.largest(), net)
    assert all(state == "active" for _, state in _cells(view.widget.value))
    view.show(arch)
    states = [state for _, state in _cells(view.widget.value)]
    assert view.arch == arch and states == ["active" if a else "inactive" for a in active]


@pytest.mark.parametrize("moe", [False, True])
def test_transformer_layers_heads_ffn_and_experts(moe):
    net = ElasticTransformer(53, 16, 2, moe=moe)
    arch = dict(net.space.largest())
    arch["layers"] = 2  # the third layer is switched off
    info = arch_info(arch, net.space)
    dims = {"heads", "ffn", "experts", "top_k"} if moe else {"heads", "ffn"}
    assert info.column_label == "layer" and set(info.dims) == dims
    assert info.columns == 3 and info.blocks == ()
    assert [c.active for c in info.cells if c.dim == "heads"] == [True, True, False]
    svg = ArchView(arch, net).widget.value
    cells = _cells(svg)
    assert len(cells) == 3 * len(dims)
    assert sum(state == "inactive" for _, state in cells) == len(dims)  # one layer of each dim
    assert ("experts", "active") in cells if moe else "experts" not in svg
    top_heads = max(net.space.dims["heads.0"])
    assert f"heads {top_heads}" in svg and "layers=2" in svg


def test_bad_input():
    with pytest.raises(ConfigError, match="needs a supernet or a SearchSpace"):
        ArchView({"depth": 2}, object())
    net = ElasticMLP()
    with pytest.raises(ValueError, match="not allowed"):
        ArchView({**net.space.smallest(), "depth": 99}, net)


def test_layers_the_subnet_skips_say_so():
    """Layers past the depth are greyed and labelled "skipped", not "width 16"."""
    net = ElasticMLP()
    arch = net.space.smallest()
    svg = ArchView(arch, net).widget.value
    skipped = svg.count(": skipped</text>")
    inactive = sum(state == "inactive" for _, state in _cells(svg))
    assert skipped == inactive > 0
    with pytest.warns(FutureWarning, match=r"ArchView: pass title=\.\.\. by keyword"):
        assert "trial 3" in ArchView(arch, net, "trial 3").widget.value
    bundle = ArchView(arch, net)._repr_mimebundle_()
    assert bundle["image/svg+xml"] == svg  # JupyterLab, nbconvert and GitHub show the SVG
