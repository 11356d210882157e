"""convert's errors name what was wrong, and a failed convert leaves the model as it was;
saving and loading a converted supernet's weights (weights_only)."""

from __future__ import annotations

import pytest
import torch
from convert_models import IndexedLayers, mlp, resnet, state_hash
from torch import nn

from nasviz.errors import CheckpointError, ConfigError, ShapeError, SpaceError
from nasviz.supernet import Supernet, convert


def test_an_example_input_that_does_not_fit_names_the_failing_module():
    model = resnet()
    before = state_hash(model)
    with pytest.raises(ShapeError, match=r"example_input.*'stem\.0' \(Conv2d\)"):
        convert(model, torch.randn(2, 3, 8, 8))
    assert state_hash(model) == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": (0.5, 0.75)}, "width must be fractions in \\(0, 1\\] including 1.0"),
        ({"width": (0.0, 1.0)}, "width must be fractions"),
        ({"width": "wide"}, "width must be fractions"),
        ({"share": "layer"}, "share must be one of"),
        ({"depth": "yes"}, "depth must be True or False"),
    ],
)
def test_bad_arguments(kwargs, match):
    model = resnet()
    before = state_hash(model)
    with pytest.raises(ConfigError, match=match):
        convert(model, torch.randn(2, 1, 8, 8), **kwargs)
    assert state_hash(model) == before


def test_bad_model_and_input_types():
    with pytest.raises(ConfigError, match="model must be a torch nn.Module"):
        convert(lambda x: x, torch.randn(2, 4))
    with pytest.raises(ConfigError, match="example_input must be a tensor"):
        convert(mlp(), (2, 64))


def test_a_model_with_nothing_to_shrink():
    model = nn.Sequential(nn.Linear(8, 3))  # its only channels are the outputs
    before = state_hash(model)
    with pytest.raises(ConfigError, match="nothing to make elastic in Sequential.*'0'"):
        convert(model, torch.randn(2, 8))
    assert state_hash(model) == before


def test_a_model_that_cannot_be_traced_names_it():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2)

        def forward(self, x):
            if x.sum() > 1e9:  # data-dependent control flow is fine for tracing by autograd
                x = x * 2
            return self.b(torch.relu(self.a(x)))

    sn = convert(Branchy(), torch.randn(2, 4))  # traced through autograd: no fx needed
    assert sn.space.names == ("width.0",)

    class NotTensorOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 8)

        def forward(self, x):
            raise RuntimeError("cannot run")

    with pytest.raises(ShapeError, match="NotTensorOut failed.*RuntimeError: cannot run"):
        convert(NotTensorOut(), torch.randn(2, 4))


def test_an_unsupported_layer_stays_static_with_a_reason():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 12), nn.PReLU(12), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 2)
    )
    sn = convert(model, torch.randn(3, 6))
    rows = sn.report().set_index("module")
    assert not rows.loc["1", "elastic"] and "PReLU" in rows.loc["1", "why"]
    assert rows.loc["2", "elastic"] and rows.loc["4", "elastic"]  # the group 2 -> 4 shrinks


def test_a_module_list_the_forward_indexes_keeps_its_depth():
    torch.manual_seed(0)
    model = IndexedLayers().eval()
    x = torch.randn(3, 8)
    sn = convert(model, x)
    assert not any(n.startswith("depth.") for n in sn.space.names)
    assert any(n.startswith("width.") for n in sn.space.names)
    rows = sn.report().set_index("module")
    assert "does not iterate over 'blocks'" in rows.loc["blocks.2", "why"]
    with torch.no_grad():
        assert (sn(x) - model(x)).abs().max().item() <= 1e-6


def test_an_arch_of_another_converted_model_is_refused():
    cnn = convert(resnet(), torch.randn(2, 1, 8, 8))
    other = convert(mlp(), torch.randn(2, 64))
    with pytest.raises(SpaceError), cnn.subnet(other.largest()):
        pass
    with pytest.raises(ShapeError, match="expects inputs shaped like its example input"):
        cnn(torch.randn(2, 64))


def test_save_and_load_weights(tmp_path):
    model = resnet(seed=0)
    x = torch.randn(2, 1, 8, 8)
    sn = convert(model, x).eval()
    arch = sn.sample(5)
    path = sn.save(tmp_path / "sn.pt")
    blob = torch.load(path, weights_only=True)  # strings and tensors only
    assert blob["family"] == "Converted"
    fresh = convert(resnet(seed=1), x).eval()  # same architecture, other weights
    assert Supernet.load_weights is type(fresh).load_weights
    fresh.load_weights(path)
    with torch.no_grad(), sn.subnet(arch), fresh.subnet(arch):
        assert torch.equal(sn(x), fresh(x))
    with pytest.raises(CheckpointError, match="convert the same model again"):
        Supernet.load(path)
    with pytest.raises(CheckpointError, match="config mismatch"):
        convert(resnet(), x, share="model").load_weights(path)
    torch.save(sn.export(arch).state_dict(), tmp_path / "sub.pt")
    static = sn.export(arch)
    static.load_state_dict(torch.load(tmp_path / "sub.pt", weights_only=True))
