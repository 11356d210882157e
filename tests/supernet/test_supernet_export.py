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
    ElasticTransformer,
    Supernet,
    train_supernet,
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
    bad = torch.randn(4, 3, 5) if family != "transformer" else torch.randint(0, 40, (4, 13))
    with pytest.raises(ShapeError, match="expects"):
        net(bad)


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_wrong_input_dtype_is_named(family):
    net, x = NETS[family]
    for bad, got in ((x.double(), "float64"), (x.long(), "int64"), (x.half(), "float16")):
        with pytest.raises(ShapeError, match=rf"expects .*float32.*got {got}"):
            net(bad)
    with pytest.raises(ShapeError, match="expects a tensor"):
        net(x.tolist())


def test_token_ids_outside_the_vocabulary_or_of_a_wrong_dtype_are_named():
    net, x = NETS["transformer"]  # vocabulary of 40
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for bad, message in (
        (torch.full((2, 12), 40), r"token ids in 0\.\.39 .*got ids from 40 to 40"),
        (x - 1, r"token ids in 0\.\.39 .*from -1"),
        (x.float(), r"int64 .*got float32"),
        (x.to(torch.uint8), r"int64 .*got uint8"),
    ):
        with pytest.raises(ShapeError, match=message):
            net(bad)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert net(x.int()).shape == (len(x), 2)  # int32 ids are fine


@pytest.mark.parametrize("family", ["mlp", "cnn", "moe"])
def test_export_equals_subnet_after_training(family, digits_data, tasks_data):
    torch.manual_seed(0)
    if family == "moe":
        net, data = ElasticTransformer.for_data(tasks_data, moe=True), tasks_data
    else:
        net, data = make_net(family)[0], digits_data
    x = data.val.X[:16]
    train_supernet(net, data.train.subset(300), epochs=1, batch_size=50, eval_every=5).run()
    assert not net.training
    for arch in [net.largest(), net.smallest(), *net.sample(5, n=6)]:
        with torch.no_grad(), net.subnet(arch):
            expected = net(x)
        with torch.no_grad():
            assert (net.export(arch)(x) - expected).abs().max().item() <= 1e-5
