"""count_macs(arch, input_shape): the closed form equals what FlopCounterMode counts on the export."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from supernet_helpers import FAMILIES, make_net

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
