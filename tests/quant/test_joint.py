"""Bits as search dimensions: joint spaces, QuantSupernet (protocol, threads, bytes), Search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from quant_helpers import state_hash
from subnet_threads import worst_thread_error

from nasviz.errors import ConfigError, SpaceError
from nasviz.objectives import accuracy, latency, params
from nasviz.quant import (
    QuantSupernet,
    count_bytes,
    describe,
    model_bytes,
    quant_space,
    quantize,
)
from nasviz.search import Search
from nasviz.space import SearchSpace
from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer


def _mlp() -> ElasticMLP:
    torch.manual_seed(0)
    return ElasticMLP(64, 10, widths=(16, 32), depths=(1, 2)).eval()


def test_joint_space_samples_encodes_and_decodes():
    net = _mlp()
    qspace = quant_space(net, bits=(4, 8, 16))
    assert qspace.names == ("bits.layers.0", "bits.layers.1", "bits.head")
    joint = net.space | qspace
    assert joint.names == (*net.space.names, *qspace.names)
    assert joint.size == net.space.size * 3**3
    for arch in joint.sample(0, n=20):
        assert joint.decode(joint.encode(arch)) == arch
        assert qspace.bits_of(arch)["head"] == arch["bits.head"]
    assert SearchSpace.join(net.space, qspace) == joint


def test_joining_spaces_with_a_shared_name_is_a_clear_error():
    a, b = SearchSpace({"depth": [1, 2], "x": [0, 1]}), SearchSpace({"depth": [3]})
    with pytest.raises(SpaceError, match="'depth' is defined by space 0 and by space 1"):
        _ = a | b
    with pytest.raises(TypeError):
        _ = a | {"y": [1]}


def test_block_granularity_groups_the_layers_of_a_block():
    cnn = ElasticCNN()
    qspace = quant_space(cnn, granularity="block")
    assert qspace.layers["bits.stages.0.1"] == (
        "stages.0.1.expand",
        "stages.0.1.dw",
        "stages.0.1.project",
    )
    assert len(qspace.names) == 1 + 3 * 4 + 1  # stem, 12 blocks, head


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_subnet_equals_its_quantized_export_and_bytes_are_exact(family):
    torch.manual_seed(0)
    net = _mlp() if family == "mlp" else ElasticCNN().eval()
    x = torch.randn(8, 64) if family == "mlp" else torch.randn(8, 1, 8, 8)
    before = state_hash(net)
    qnet = QuantSupernet(net, quant_space(net, bits=(2, 4, 8, 16)))
    for arch in qnet.space.sample(3, n=4):
        static = qnet.export(arch)
        with torch.no_grad(), qnet.subnet(arch):
            torch.testing.assert_close(qnet(x), static(x))
        bits = qnet.bits_of(arch)
        assert describe(static).set_index("layer")["bits"].to_dict() == bits
        assert qnet.count_bytes(arch) == count_bytes(static) == model_bytes()(qnet, arch)
        assert qnet.count_params(arch) == net.count_params(qnet._net_arch(arch))
        with torch.no_grad():
            net_arch = {k: arch[k] for k in net.space.names}
            ref = net.export(net_arch)(x)
        assert (static(x) - ref).abs().max() <= ref.abs().max()  # quantized, not garbage
    assert state_hash(net) == before


def test_canonical_sets_bits_of_unused_layers_to_the_smallest():
    net = _mlp()
    qnet = QuantSupernet(net, quant_space(net, bits=(4, 8)))
    arch = qnet.space.validate(
        {
            "depth": 1,
            "width.0": 32,
            "width.1": 32,
            "bits.layers.0": 8,
            "bits.layers.1": 8,
            "bits.head": 8,
        }
    )
    canon = qnet.canonical(arch)
    assert canon["width.1"] == 16 and canon["bits.layers.1"] == 4  # layer 1 is past depth
    assert canon["bits.layers.0"] == 8 and qnet.canonical(canon) == canon
    assert qnet.count_bytes(arch) == qnet.count_bytes(canon)


@pytest.mark.parametrize("family", ["cnn", "transformer_moe"])
def test_canonical_reads_the_block_view_and_agrees_with_whole_exports(family, monkeypatch):
    """Canonical archs come from which layers each running block uses (no export per arch) and
    equal those found from whole exports, for a CNN (kernels through transforms) and an MoE
    transformer (experts per choice)."""
    torch.manual_seed(0)
    if family == "cnn":
        net = ElasticCNN(
            1, 3, 8, stem_channels=4, stage_channels=(4, 6), strides=(2, 1), kernels=(3, 5),
            expands=(1, 2), depths=(1, 2),
        ).eval()  # fmt: skip
    else:
        net = ElasticTransformer(
            16, 6, 3, dim=8, head_dim=4, layers=(1, 2), heads=(1, 2), ffn_widths=(8, 16),
            moe=True, experts=(2, 3), top_ks=(1, 2),
        ).eval()  # fmt: skip
    archs = QuantSupernet(net, quant_space(net, bits=(4, 8), granularity="layer")).sample(3, n=60)
    by_exports = QuantSupernet(net, quant_space(net, bits=(4, 8), granularity="layer"))
    by_exports._by_blocks = False  # the path for nets without a block view
    expected = [by_exports.canonical(a) for a in archs]
    qnet = QuantSupernet(net, quant_space(net, bits=(4, 8), granularity="layer"))
    qnet.canonical(archs[0])  # checks the block view against whole exports once
    assert qnet._by_blocks
    monkeypatch.setattr(net, "export", lambda arch: pytest.fail("canonical exported a subnet"))
    assert [qnet.canonical(a) for a in archs] == expected
    assert sum(c != a for c, a in zip(expected, archs, strict=True)) > 10  # unused bits were set


def test_a_net_without_a_block_view_is_canonicalized_through_exports():
    from nasviz.supernet import convert

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    net = convert(model, torch.zeros(2, 8))
    qnet = QuantSupernet(net, quant_space(net, bits=(4, 8)))
    for arch in qnet.space.sample(0, n=5):
        canon = qnet.canonical(arch)
        assert qnet.canonical(canon) == canon and qnet.count_bytes(canon) == qnet.count_bytes(arch)
    assert qnet._by_blocks is False


def test_many_threads_get_their_own_quantized_subnet():
    net = _mlp()
    qnet = QuantSupernet(net, quant_space(net, bits=(2, 4, 8)))
    x = torch.randn(16, 64)
    archs = qnet.space.sample(7, n=12)
    # the exports cached while computing the expected outputs are dropped: threads race to
    # make them again
    assert worst_thread_error(qnet, x, archs, after_exports=qnet.clear) == 0.0


def test_weights_changing_drops_cached_quantized_exports():
    net = _mlp()
    qnet = QuantSupernet(net, quant_space(net))
    arch, x = qnet.space.largest(), torch.randn(4, 64)
    with torch.no_grad(), qnet.subnet(arch):
        before = qnet(x)
        net.head.weight.mul_(2.0)
        after = qnet(x)
    assert not torch.allclose(before, after)


def test_a_plain_model_gets_a_bits_only_space(trained_mlp, digits_data):
    qspace = quant_space(trained_mlp, bits=(4, 8))
    assert repr(qspace) == "QuantSpace(3 layer dimensions, bits [4, 8], 8 archs)"
    qnet = QuantSupernet(trained_mlp, qspace)
    assert qnet.space == qspace
    arch = qnet.space.validate(dict.fromkeys(qspace.names, 8))
    static = qnet.export(arch)
    X = digits_data.val.X[:32]
    torch.testing.assert_close(static(X), quantize(trained_mlp, 8)(X))


def test_bits_for_layers_that_do_not_exist_are_errors(trained_mlp):
    net = _mlp()
    other = quant_space(ElasticCNN())
    before = state_hash(net)
    with pytest.raises(SpaceError, match="does not have"):
        QuantSupernet(net, other)
    with pytest.raises(ConfigError, match="matches no"):
        quant_space(net, include="stages.*")
    with pytest.raises(ConfigError, match="bits"):
        quant_space(net, bits=(4, 6))
    with pytest.raises(ConfigError, match="granularity"):
        quant_space(net, granularity="channel")
    with pytest.raises(ConfigError, match="already quantized"):
        QuantSupernet(quantize(trained_mlp, 8), quant_space(trained_mlp))
    assert state_hash(net) == before


def test_joint_search_runs_end_to_end_and_the_front_exports(digits_data):
    net = _mlp()
    qnet = QuantSupernet(net, quant_space(net, bits=(2, 8)))
    search = Search(
        qnet,
        objectives=[accuracy(digits_data.val), model_bytes(), params()],
        strategy="random",
        budget=6,
        storage=":memory:",
        seed=0,
        workers=2,
    )
    search.start().wait(timeout=120)
    assert search.status.state == "finished", search.traceback
    results = search.results
    assert (results["state"] == "COMPLETE").all() and len(results) == 6
    for row in search.pareto().itertuples():
        arch = {n: results.loc[row.Index, n] for n in qnet.space.names}
        assert qnet.count_bytes(arch) == row.model_bytes
        static = qnet.export(arch)  # a quantized subnet exports ...
        lat = latency((1, 64), repeats=2, warmup=1)(qnet, arch)  # ... and its latency measures
        assert np.isfinite(lat) and lat > 0
        assert set(describe(static)["kernel"]) <= {"simulated", "float"}


def test_dynamic_mode_runs_real_int8_and_measures_its_latency():
    net = _mlp()
    qnet = QuantSupernet(net, quant_space(net, bits=(8, 32)), mode="dynamic")
    x = torch.randn(4, 64)
    arch = qnet.space.validate(
        {
            "depth": 2,
            "width.0": 32,
            "width.1": 16,
            "bits.layers.0": 8,
            "bits.layers.1": 32,
            "bits.head": 8,
        }
    )
    static = qnet.export(arch)
    table = describe(static).set_index("layer")
    assert table["kernel"].to_dict() == {"1": "real", "3": "float", "5": "real"}
    with torch.no_grad(), qnet.subnet(arch):
        torch.testing.assert_close(qnet(x), static(x))
    assert qnet.count_bytes(arch) == count_bytes(static)
    assert latency((1, 64), repeats=2, warmup=1)(qnet, arch) > 0
    with pytest.raises(ConfigError, match="dynamic"):
        QuantSupernet(net, quant_space(net, bits=(4, 8)), mode="dynamic")
