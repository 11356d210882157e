"""Checkpoints: config + tensors, weights_only loading, mismatches named."""

from __future__ import annotations

import json

import pytest
import torch
from supernet_helpers import make_net

from nasviz.errors import CheckpointError, ConfigError
from nasviz.supernet import (
    ElasticCNN,
    ElasticMLP,
    Supernet,
    load_subnet,
    save_subnet,
)


@pytest.mark.parametrize("family", ["mlp", "cnn-transform", "moe"])
def test_supernet_round_trip(tmp_path, family):
    net, x = make_net(family)
    net.calibration_inputs = None if family != "cnn-transform" else torch.randn(20, 1, 8, 8)
    path = net.save(tmp_path / "net.pt")
    torch.load(path, weights_only=True)  # loadable without unpickling code
    loaded = Supernet.load(path)
    assert type(loaded) is type(net) and loaded.config == net.config
    arch = net.sample(3)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.export(arch)(x), net.export(arch)(x))
    if net.calibration_inputs is not None:
        assert torch.equal(loaded.calibration_inputs, net.calibration_inputs)


def test_subnet_round_trip(tmp_path):
    net, x = make_net("cnn")
    arch = net.sample(5)
    path = save_subnet(net, arch, tmp_path / "sub.pt")
    static = load_subnet(path)
    assert static.arch == arch
    torch.testing.assert_close(static(x), net.export(arch)(x))


def test_mismatches_are_named(tmp_path):
    mlp = ElasticMLP(widths=(16, 32))
    path = mlp.save(tmp_path / "mlp.pt")
    with pytest.raises(
        CheckpointError, match=r"widths=\[16, 32\] in the checkpoint but \[32, 64, 128\]"
    ):
        ElasticMLP().load_weights(path)
    with pytest.raises(CheckpointError, match="holds an ElasticMLP .* expected an ElasticCNN"):
        ElasticCNN.load(path)
    with pytest.raises(CheckpointError, match="holds a supernet"):
        load_subnet(path)
    save_subnet(mlp, mlp.smallest(), tmp_path / "sub.pt")
    with pytest.raises(CheckpointError, match="holds an exported subnet"):
        Supernet.load(tmp_path / "sub.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights_only"):
        Supernet.load(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Supernet.load(tmp_path / "missing.pt")


def test_the_functions_of_the_previous_release_warn_and_still_work(tmp_path):
    from nasviz.supernet import load_supernet, load_weights, save_supernet

    net = ElasticMLP(widths=(4, 8), depths=(1, 2))
    with pytest.warns(
        FutureWarning, match=r"save_supernet\(\) is deprecated: use net.save\(path\)"
    ):
        save_supernet(net, tmp_path / "n.pt")
    with pytest.warns(FutureWarning, match=r"load_supernet\(\) is deprecated: use Supernet.load"):
        again = load_supernet(tmp_path / "n.pt")
    assert isinstance(again, ElasticMLP) and again.config == net.config
    with pytest.warns(FutureWarning, match=r"use net.load_weights\(path\)"):
        assert load_weights(ElasticMLP(widths=(4, 8), depths=(1, 2)), tmp_path / "n.pt")
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True)
    )


def test_transformer_choices_are_plural_and_files_saved_under_the_old_names_load(tmp_path):
    from nasviz.hardware import HardwareProfile
    from nasviz.supernet import ElasticTransformer

    small = {"dim": 8, "head_dim": 4, "layers": (1, 2), "heads": (1, 2)}
    new = ElasticTransformer(16, 6, 3, **small, ffn_widths=(8, 16), moe=True, top_ks=(1, 2))
    assert (new.config.ffn_widths, new.config.top_ks) == ((8, 16), (1, 2))
    assert new.space.dims["ffn.1"] == (8, 16) and new.space.dims["top_k.0"] == (1, 2)
    with pytest.warns(FutureWarning, match=r"ElasticTransformer: ffn= is now ffn_widths="):
        old = ElasticTransformer(16, 6, 3, **small, ffn=(8, 16), moe=True, top_ks=(1, 2))
    assert old.config == new.config
    with pytest.raises(ConfigError, match="both top_k= .* and top_ks="):
        ElasticTransformer(16, 6, 3, top_k=(1,), top_ks=(1,))

    # a checkpoint and a profile written before the rename: config keys "ffn" and "top_k"
    blob = torch.load(new.save(tmp_path / "net.pt"), weights_only=True)
    renamed = {"ffn_widths": "ffn", "top_ks": "top_k"}
    saved = {renamed.get(k, k): v for k, v in json.loads(blob["config"]).items()}
    torch.save({**blob, "config": json.dumps(saved)}, tmp_path / "old.pt")
    loaded = Supernet.load(tmp_path / "old.pt")
    assert loaded.config == new.config
    assert ElasticTransformer(16, 6, 3, **small, ffn_widths=(8, 16), moe=True).load_weights(
        tmp_path / "old.pt"
    )
    profile = HardwareProfile.measure(new, (1, 6), repeats=1, warmup=0, rounds=1, samples=2)
    old_profile = HardwareProfile.from_dict({**profile.to_dict(), "config": saved})
    old_profile.check(loaded)  # measured for this net: no error
    with pytest.raises(ConfigError, match="another config"):
        old_profile.check(ElasticTransformer(16, 6, 3, **small, ffn_widths=(8,), moe=True))
