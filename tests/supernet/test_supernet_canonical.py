"""canonical(arch): one representative per subnet, with the same outputs and cost."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from supernet_helpers import make_net

from nasviz.errors import SpaceError
from nasviz.supernet import ElasticMLP, Supernet

CANONICAL_FAMILIES = ("mlp", "cnn", "transformer", "moe")
NETS = {f: make_net(f) for f in CANONICAL_FAMILIES}
for _net, _x in NETS.values():
    _net.eval()


@pytest.mark.parametrize("family", CANONICAL_FAMILIES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_canonical_is_an_equivalent_fixed_point(family, seed):
    net, x = NETS[family]
    arch = net.sample(seed)
    canon = net.canonical(arch)
    assert canon in net.space
    assert list(canon) == list(net.space.names)
    assert net.canonical(canon) == canon
    assert net.canonical(dict(arch)) == canon  # plain mappings work too
    with torch.no_grad():
        torch.testing.assert_close(net.export(canon)(x), net.export(arch)(x), rtol=0, atol=0)
    assert net.count_params(canon) == net.count_params(arch)


@pytest.mark.parametrize(
    ("family", "depth_name", "per_layer"),
    [
        ("mlp", "depth", ("width",)),
        ("transformer", "layers", ("heads", "ffn")),
        ("moe", "layers", ("heads", "ffn", "experts", "top_k")),
    ],
)
def test_unused_layers_collapse_and_used_ones_do_not(family, depth_name, per_layer):
    net, _x = NETS[family]
    space = net.space
    shallow = space.smallest().replace(**{depth_name: space.dims[depth_name][0]})
    used = shallow[depth_name]
    # every value of every unused per-layer dimension gives the same canonical arch
    variants = {
        net.canonical(shallow.replace(**{f"{name}.{i}": v}))
        for name in per_layer
        for i in range(used, max(space.dims[depth_name]))
        for v in space.dims[f"{name}.{i}"]
    }
    assert variants == {net.canonical(shallow)}
    big = space.largest()
    canon = net.canonical(big.replace(**{depth_name: used}))
    assert all(
        canon[f"{name}.{i}"] == space.dims[f"{name}.0"][0]
        for name in per_layer
        for i in range(used, max(space.dims[depth_name]))
    )
    # a used dimension is never collapsed: changing it changes the canonical arch
    for name in per_layer:
        first, last = space.dims[f"{name}.0"][0], space.dims[f"{name}.0"][-1]
        assert net.canonical(big.replace(**{f"{name}.0": first})) != net.canonical(
            big.replace(**{f"{name}.0": last})
        )
    # the largest arch uses every dimension
    assert net.canonical(big) == big


def test_distinct_mlp_subnets_are_counted_exactly():
    net = ElasticMLP(8, 2, widths=(4, 8), depths=(1, 2, 3))
    distinct = {net.canonical(a) for a in net.space}
    # depth d: 2**d width choices -> 2 + 4 + 8
    assert len(distinct) == 14 < net.space.size == 24


def test_cnn_canonical_is_identity_and_base_validates():
    net, _x = NETS["cnn"]
    for arch in net.sample(5, n=10):
        assert net.canonical(arch) == arch
    assert type(net).canonical is Supernet.canonical
    with pytest.raises(SpaceError, match="depth.0"):
        net.canonical(net.largest().replace(**{"depth.0": 99}))
    with pytest.raises(SpaceError, match="width.1"):
        NETS["mlp"][0].canonical({"depth": 1, "width.0": 32, "width.1": 7, "width.2": 32})
