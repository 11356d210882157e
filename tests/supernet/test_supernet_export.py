"""Export: plain modules, equal outputs, equal parameter counts; the protocol objectives use."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from supernet_helpers import FAMILIES, make_net

from nasviz import objectives
from nasviz.errors import ShapeError, SpaceError
from nasviz.moe import MoE
from nasviz.supernet import (
    ElasticAttention,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLayerNorm,
    ElasticLinear,
    Supernet,
)

NETS = {f: make_net(f) for f in FAMILIES}
ELASTIC = (
    ElasticLinear,
    ElasticConv2d,
    ElasticBatchNorm2d,
    ElasticLayerNorm,
    ElasticAttention,
    Supernet,
)


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1))
def test_export_equals_subnet(family, seed):
    net, x = NETS[family]
    net.eval()
    arch = net.sample(seed)
    with torch.no_grad(), net.subnet(arch):
        expected = net(x)
    static = net.export(arch)
    assert not any(isinstance(m, ELASTIC) for m in static.modules())
    assert all(type(m).__module__.startswith(("torch.", "nasviz.")) for m in static.modules())
    with torch.no_grad():
        assert (static(x) - expected).abs().max().item() <= 1e-5
    n_static = objectives.count_params(static)
    assert net.count_params(arch) == n_static == objectives.params()(net, arch)
    assert static.arch == arch


@pytest.mark.parametrize("family", FAMILIES)
def test_largest_and_smallest_bound_the_cost(family):
    net, x = NETS[family]
    sizes = [net.count_params(a) for a in net.sample(1, n=10)]
    assert (
        net.count_params(net.smallest())
        <= min(sizes)
        <= max(sizes)
        <= net.count_params(net.largest())
    )
    assert net.count_params(net.largest()) <= objectives.count_params(net)
    shape = tuple(x.shape)
    small, large = (objectives.macs(shape)(net, a) for a in (net.smallest(), net.largest()))
    assert 0 < small < large


def test_moe_subnets_keep_nasviz_moe_layers():
    net, x = NETS["moe"]
    arch = net.space.largest().replace(**{"experts.0": 2, "top_k.0": 1})
    moes = [m for m in net.export(arch).modules() if isinstance(m, MoE)]
    assert moes[0].num_experts == 2 and moes[0].top_k == 1
    with net.subnet(arch):
        net(x)
        assert net.aux_loss().item() > 0


def test_outside_a_subnet_the_largest_runs():
    net, x = NETS["mlp"]
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.export(net.largest())(x))
    assert net.active_arch == net.largest()
    with net.subnet(net.smallest()) as arch:
        assert arch == net.smallest() == net.active_arch
    assert net.active_arch == net.largest()


@pytest.mark.parametrize("family", ["mlp", "cnn", "transformer"])
def test_bad_arch_and_input_are_named(family):
    net, _x = NETS[family]
    name = net.space.names[0]
    with pytest.raises(SpaceError, match=name):
        net.export(net.largest().replace(**{name: 999}))
    with pytest.raises(SpaceError, match="missing"), net.subnet({name: net.space.dims[name][0]}):
        pass
    bad = torch.randn(4, 3, 5) if family != "transformer" else torch.randn(4, 12)
    with pytest.raises(ShapeError, match="expects"):
        net(bad)


def test_reorder_channels_keeps_the_largest_and_sorts_importance():
    for family in ("mlp", "cnn", "transformer", "moe"):
        net, x = make_net(family)
        net.eval()
        with torch.no_grad():
            before = net(x)
            net.reorder_channels()
            after = net(x)
        torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
    net, _ = make_net("mlp")
    net.reorder_channels()
    for i, _layer in enumerate(net.layers):
        after_layer = net.layers[i + 1] if i + 1 < len(net.layers) else net.head
        scores = after_layer.weight.abs().sum(0)
        assert torch.all(scores[:-1] >= scores[1:])
