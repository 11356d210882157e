"""count_macs(arch, input_shape): the closed form equals what FlopCounterMode counts on the export,
attention's matrix products included (the math backend's count)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from supernet_helpers import FAMILIES, make_net
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nasviz import objectives
from nasviz.errors import ShapeError, SpaceError

NETS = {f: make_net(f) for f in FAMILIES}


def _shapes(family: str, batch: int, length: int) -> list[tuple[int, ...]]:
    if family == "mlp":
        return [(batch, 64), (batch, 1, 8, 8)]
    if family.startswith("cnn"):
        return [(batch, 1, 8, 8)]
    return [(batch, length)]


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 5), length=st.integers(1, 12))
def test_closed_form_equals_flop_counter_on_the_export(family, seed, batch, length):
    net, _x = NETS[family]
    arch = net.sample(seed)
    static = net.export(arch)
    for shape in _shapes(family, batch, length):
        assert net.count_macs(arch, shape) == objectives.count_macs(static, shape)


def _math_backend_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """The true count: torch's plain FLOP counter with attention forced onto the math backend,
    whose explicit matrix products it counts (the CPU kernel it otherwise picks counts 0)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("family", ["transformer", "moe"])
def test_transformer_macs_count_attention_as_the_math_backend_does(family):
    net, _x = NETS[family]
    g = torch.Generator().manual_seed(0)
    for arch in [net.largest(), net.smallest(), *net.sample(3, n=3)]:
        static = net.export(arch)
        for shape in [(3, 12), (2, 5), (1, 1)]:
            x = torch.randint(0, 40, shape, generator=g)
            true = _math_backend_macs(static, x)
            with net.subnet(arch):
                in_supernet = _math_backend_macs(net, x)
            assert net.count_macs(arch, shape) == true == in_supernet, (arch, shape)
            assert objectives.count_macs(static, shape) == true  # the CPU kernel, counted
            assert objectives.count_macs(net, shape, arch) == true  # the objective's path
            assert objectives.macs(shape)(net, arch) == true


def test_transformer_macs_by_hand():
    net, _x = NETS["transformer"]  # dim 64, head_dim 16, 2 classes
    arch = net.smallest()  # one block, one head, FFN 64
    assert (arch["layers"], arch["heads.0"], arch["ffn.0"]) == (1, 1, 64)
    batch, length = 2, 5
    tokens = batch * length
    projections = 4 * tokens * 64 * 16  # q, k, v (64 -> 16) and output (16 -> 64)
    attention = 2 * batch * 1 * length * length * 16  # Q K^T and A V
    ffn = 2 * tokens * 64 * 64
    head = batch * 64 * 2  # mean-pooled, one row per example
    assert net.count_macs(arch, (batch, length)) == projections + attention + ffn + head


@pytest.mark.parametrize("family", ["mlp", "cnn", "moe"])
def test_macs_objective_and_extremes(family):
    net, x = NETS[family]
    shape = tuple(x.shape)
    small, large = (net.count_macs(a, shape) for a in (net.smallest(), net.largest()))
    assert 0 < small < large
    assert net.count_macs(net.largest(), (2 * shape[0], *shape[1:])) == 2 * large  # per example


@pytest.mark.parametrize("family", ["mlp", "cnn", "transformer"])
def test_shapes_the_net_cannot_take_are_named(family):
    net, x = NETS[family]
    arch = net.largest()
    bad = {
        "mlp": [(4, 63), (4,), (4, 3, 5)],
        "cnn": [(4, 1, 9, 9), (4, 8, 8), (4, 3, 8, 8)],
        "transformer": [(4, 13), (4, 12, 1), (4,)],
    }[family]
    for shape in bad:
        with pytest.raises(ShapeError, match=r"expects .*got"):
            net.count_macs(arch, shape)
    for shape in [(0, *x.shape[1:]), (2.0, *x.shape[1:]), "4x64", None]:
        with pytest.raises(ShapeError, match="positive ints"):
            net.count_macs(arch, shape)
    with pytest.raises(SpaceError):
        net.count_macs(arch.replace(**{net.space.names[0]: 999}), tuple(x.shape))
