"""convert on a ResNet-style CNN, an MLP and a small transformer: the largest subnet is the
model, parameters are shared, exports are the user's classes and equal the subnets."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from convert_models import (
    BasicBlock,
    ResNet,
    TinyTransformer,
    mlp,
    resnet,
    state_hash,
    storage_bytes,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from subnet_threads import worst_thread_error
from torch import nn

from nasviz._flops import flop_counter
from nasviz.objectives import count_macs
from nasviz.supernet import ConvertedSupernet, convert


def _cnn():
    model = resnet()
    return model, torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _mlp():
    torch.manual_seed(0)
    return mlp().eval(), torch.randn(4, 64, generator=torch.Generator().manual_seed(1))


def _transformer():
    torch.manual_seed(0)
    return TinyTransformer().eval(), torch.randint(
        0, 20, (3, 7), generator=torch.Generator().manual_seed(1)
    )


MAKERS = {"cnn": _cnn, "mlp": _mlp, "transformer": _transformer}


@pytest.fixture(scope="module", params=list(MAKERS))
def converted(request):
    model, x = MAKERS[request.param]()
    before = state_hash(model)
    sn = convert(model, x).eval()
    return request.param, model, x, sn, before


def test_largest_is_the_model_and_shares_its_tensors(converted):
    _kind, model, x, sn, before = converted
    assert isinstance(sn, ConvertedSupernet)
    with torch.no_grad():
        assert (sn(x) - model(x)).abs().max().item() <= 1e-6
        with sn.subnet(sn.largest()):
            assert (sn(x) - model(x)).abs().max().item() <= 1e-6
    assert state_hash(model) == before  # convert (and running it) changed nothing
    mine = {id(p) for p in model.parameters()}
    assert all(id(p) in mine for p in sn.parameters())  # the very same parameters
    base = storage_bytes([*model.parameters(), *model.buffers()])
    total = storage_bytes([*model.parameters(), *model.buffers(), *sn.parameters(), *sn.buffers()])
    assert total <= 1.10 * base
    assert sn.count_params(sn.largest()) == sum(p.numel() for p in model.parameters())


def test_expected_dimensions(converted):
    kind, _model, _x, sn, _ = converted
    names = sn.space.names
    widths = [n for n in names if n.startswith("width.")]
    depths = [n for n in names if n.startswith("depth.")]
    assert widths and all(sn.space.dims[n] == (0.25, 0.5, 0.75, 1.0) for n in widths)
    if kind == "cnn":
        # layer1 and layer2 each may drop their second block; the first of layer2 downsamples
        assert {sn.dims[d].container for d in depths} == {"layer1", "layer2"}
        assert all(sn.space.dims[d] == (1, 2) for d in depths)
    elif kind == "transformer":
        assert [sn.dims[d].container for d in depths] == ["encoder.layers"]
        assert sn.space.dims[depths[0]] == (1, 2, 3)
    else:
        assert depths == []  # plain layers, no blocks


def _check_export(sn, x, arch, macs=True):
    with torch.no_grad(), sn.subnet(arch):
        inside = sn(x)
    static = sn.export(arch)
    with torch.no_grad():
        out = static(x)
    assert (out - inside).abs().max().item() <= 1e-5
    assert sn.count_params(arch) == sum(p.numel() for p in static.parameters())
    if not macs:
        return static
    shape = tuple(x.shape)
    counter = flop_counter()  # FlopCounterMode counting CPU attention kernels too
    with counter:
        static(x)
    assert sn.count_macs(arch, shape) == counter.get_total_flops() // 2
    if x.dtype.is_floating_point:
        assert sn.count_macs(arch, shape) == count_macs(static, shape)
    assert not any(type(m).__module__.startswith("nasviz") for m in static.modules())
    return static


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_export_equals_the_subnet_cnn(seed):
    sn, x = _cnn_net()
    arch = sn.sample(seed)
    static = _check_export(sn, x, arch, macs=seed % 5 == 0)
    assert isinstance(static, ResNet) and isinstance(static.layer1[0], BasicBlock)
    assert len(static.layer1) == arch[_depth_dim(sn, "layer1")]


def _depth_dim(sn, container):
    return next(n for n, d in sn.dims.items() if getattr(d, "container", None) == container)


@functools.cache
def _cnn_net():
    model, x = _cnn()
    return convert(model, x).eval(), x


def test_macs_of_a_trained_supernet_count_one_forward():
    """After training the net keeps BN re-calibration inputs; counting a subnet's MACs must not
    re-calibrate it under the counter (a fine-tuned converted ResNet once reported 257x the
    largest subnet's MACs: its 256 calibration samples counted too)."""
    sn = _cnn_net()[0]
    sn.calibration_inputs = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    for arch in [sn.largest(), sn.smallest(), *sn.sample(5, n=3)]:
        sn.clear_calibration()
        assert sn.count_macs(arch, (1, 1, 8, 8)) == count_macs(sn.export(arch), (1, 1, 8, 8))
        with sn.subnet(arch):  # the supernet itself, counted as the active subnet
            assert count_macs(sn, (1, 1, 8, 8)) == sn.count_macs(arch, (1, 1, 8, 8))


@pytest.mark.parametrize("kind", ["cnn", "mlp", "transformer"])
def test_export_equals_the_subnet_with_costs(kind):
    model, x = MAKERS[kind]()
    sn = _cnn_net()[0] if kind == "cnn" else convert(model, x).eval()
    for arch in [sn.smallest(), *sn.sample(3, n=4)]:
        static = _check_export(sn, x, arch)
        assert type(static) is type(model)
    smallest = sn.export(sn.smallest())
    assert sum(p.numel() for p in smallest.parameters()) < sum(
        p.numel() for p in model.parameters()
    )


def test_subnets_are_smaller_and_channels_ranked_by_importance():
    model, x = _mlp()
    sn = convert(model, x, share="group").eval()
    small = sn.space.smallest()
    static = sn.export(small)
    assert static[1].out_features == 8 and static[3].out_features == 8  # 0.25 of 32
    # the kept units are the 8 with the largest group L1 norm (own row + next layer's column)
    w1, w2 = model[1].weight.detach(), model[3].weight.detach()
    score = w1.abs().sum(1) + w2.abs().sum(0)
    best = torch.sort(torch.argsort(score, descending=True)[:8]).values
    assert torch.equal(static[1].weight, w1[best])
    assert sn.count_macs(small, (1, 64)) < sn.count_macs(sn.largest(), (1, 64))


def test_share_model_gives_one_width():
    model, x = _cnn()
    sn = convert(model, x, share="model", depth=False)
    assert list(sn.space.names) == ["width.0"]
    group = convert(model, x, share="group", depth=False)
    assert len(group.space.names) > len(convert(model, x, depth=False).space.names) > 1


def test_canonical_ignores_widths_of_skipped_blocks():
    sn, x = _cnn_net()
    d1 = _depth_dim(sn, "layer1")
    arch = sn.largest().replace(**{d1: 1})
    canon = sn.canonical(arch)
    assert canon != arch and canon[d1] == 1 and sn.canonical(canon) == canon
    with torch.no_grad():
        assert torch.allclose(sn.export(canon)(x), sn.export(arch)(x), atol=1e-6)
    assert sn.count_params(canon) == sn.count_params(arch)


def test_threads_get_their_own_subnet():
    sn, x = _cnn_net()
    archs = sn.sample(7, n=12)
    assert worst_thread_error(sn, x, archs, threads=6, repeats=2) <= 1e-5


def test_report_lists_every_module_with_a_reason():
    model, x = _transformer()
    sn = convert(model, x)
    report = sn.report()
    assert list(report["module"]) == [n for n, _ in model.named_modules() if n]
    rows = report.set_index("module")
    ffn = rows.loc["encoder.layers.0.linear1"]
    assert ffn["elastic"] and any(d.startswith("width.") for d in ffn["dims"])
    assert rows.loc["encoder.layers.2", "elastic"]  # may be skipped
    attn = rows.loc["encoder.layers.0.self_attn"]
    assert not attn["elastic"] and "heads" in attn["why"]
    assert not rows.loc["encoder.layers.0.norm1", "elastic"]
    assert "LayerNorm" in rows.loc["encoder.layers.0.norm1", "why"]
    assert (rows["why"] != "").all()
    no_ffn = convert(model, x, ffn=False).report().set_index("module")
    assert not no_ffn.loc["encoder.layers.0.linear1", "elastic"]
    assert "ffn=False" in no_ffn.loc["encoder.layers.0.linear1", "why"]


def test_training_the_supernet_trains_the_shared_model():
    model, x = _mlp()
    sn = convert(model, x).train()
    opt = torch.optim.SGD(sn.parameters(), lr=0.1)
    before = model[1].weight.detach().clone()
    for arch in (sn.largest(), sn.smallest()):
        with sn.subnet(arch):
            loss = sn(x).square().mean()
        loss.backward()
    opt.step()
    assert not torch.equal(model[1].weight, before)  # shared: no copy to sync
    grads = model[3].weight.grad
    assert grads is not None and math.isfinite(grads.abs().sum().item())


def test_batchnorm_statistics_of_a_subnet_update_only_its_channels():
    model, x = _cnn()
    sn = convert(model, x).train()
    bn = model.layer1[0].bn1
    before = bn.running_mean.clone()
    arch = sn.smallest()
    with torch.no_grad(), sn.subnet(arch):
        sn(x)
    changed = (bn.running_mean != before).nonzero().flatten()
    assert 0 < changed.numel() < bn.num_features
    assert isinstance(sn.model.layer1[0].bn1, nn.BatchNorm2d)


def test_evaluation_reuses_each_subnets_sliced_weights_until_they_change():
    """Eval forwards without autograd read a per-subnet store of sliced weights (small models):
    the same outputs as slicing per call, and a weight update is seen at once."""
    model, x = _mlp()
    sn = convert(model, x).eval()
    arch = sn.smallest()
    with torch.no_grad(), sn.subnet(arch):
        stored = sn(x)
    assert len(sn._prepared_cache) == 1
    with sn.subnet(arch):
        per_call = sn(x)  # autograd on: slices per call, nothing stored
    assert torch.equal(stored, per_call.detach())
    optimizer = torch.optim.SGD(sn.parameters(), lr=0.1)
    per_call.sum().backward()
    optimizer.step()  # the user's own tensors change (the supernet shares them)
    with torch.no_grad(), sn.subnet(arch):
        after = sn(x)
    with sn.subnet(arch):
        expected = sn(x).detach()
    assert torch.equal(after, expected) and not torch.equal(after, stored)


def test_prepared_copies_stay_within_their_byte_budget(monkeypatch):
    import nasviz.supernet._convert as converting

    model, x = _mlp()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    monkeypatch.setattr(converting, "PREPARED_BYTES", int(2.5 * weights))
    sn = convert(model, x).eval()
    with torch.no_grad():
        for arch in sn.sample(1, n=4):
            with sn.subnet(arch):
                sn(x)
    assert len(sn._prepared_cache) == 2  # two subnets' copies fit in 2.5 models' bytes
    monkeypatch.setattr(converting, "PREPARED_BYTES", weights // 2)
    big = convert(model, x).eval()  # larger than the budget: slices per call, keeps nothing
    with torch.no_grad(), big.subnet(big.smallest()):
        big(x)
    assert len(big._prepared_cache) == 0
