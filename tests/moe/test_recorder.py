"""RoutingRecorder on nasviz MoE models: what it records, hooks, outputs, labels, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nasviz.errors import MoEError
from nasviz.moe import MoE, RoutingRecorder, layer_fingerprint, route


def _hook_count(model: nn.Module) -> int:
    total = len(model._forward_pre_hooks) + len(model._forward_hooks)
    return total + sum(len(m._routing_hooks) for m in model.modules() if isinstance(m, MoE))


def test_recording_does_not_change_outputs(classifier, tiny_tasks):
    X = tiny_tasks.test.X
    with torch.no_grad():
        before = classifier(X)
        with RoutingRecorder(classifier):
            during = classifier(X)
    assert torch.equal(before, during)


def test_records_what_the_router_computes(classifier, tiny_tasks):
    X = tiny_tasks.test.X[:5]
    inputs = []
    handle = classifier.moes[0].register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    with torch.no_grad(), RoutingRecorder(classifier) as rec:
        classifier(X)
    handle.remove()
    layer = rec.recording().layers[0]
    moe = classifier.moes[0]
    flat = inputs[0].reshape(-1, moe.dim).detach()
    probs, experts, gates = route(flat @ moe.router.weight.detach().t(), moe.top_k)
    assert np.array_equal(layer.experts, experts.numpy())
    np.testing.assert_allclose(layer.gates, gates.numpy(), rtol=1e-6)
    np.testing.assert_allclose(layer.probs, probs.numpy(), rtol=1e-6)
    T = X.shape[1]
    assert np.array_equal(layer.example, np.repeat(np.arange(5), T))
    assert np.array_equal(layer.position, np.tile(np.arange(T), 5))
    assert np.array_equal(layer.token, X.reshape(-1).numpy())


def test_batches_accumulate_and_labels_line_up(classifier, tiny_tasks):
    test = tiny_tasks.test
    with torch.no_grad(), RoutingRecorder(classifier, labels={"task": test.extras["task"]}) as rec:
        for X, _ in test.batches(7):
            classifier(X)
    recording = rec.recording()
    assert recording.num_examples == len(test)
    layer = recording.layers[1]
    assert layer.example.max() == len(test) - 1
    assert np.array_equal(layer.token, test.X.reshape(-1).numpy())
    assert np.array_equal(recording.labels["task"], test.extras["task"].numpy())


def test_hooks_removed_on_exit_and_after_exception(classifier, tiny_tasks):
    baseline = _hook_count(classifier)
    with RoutingRecorder(classifier):
        assert _hook_count(classifier) > baseline
    assert _hook_count(classifier) == baseline
    with pytest.raises(RuntimeError, match="boom"), RoutingRecorder(classifier):
        classifier(tiny_tasks.test.X[:2])
        raise RuntimeError("boom")
    assert _hook_count(classifier) == baseline


def test_wrong_label_length_is_moe_error(classifier, tiny_tasks):
    test = tiny_tasks.test
    too_short = {"task": test.extras["task"][:-1]}
    with (
        pytest.raises(MoEError, match="label 'task' has"),
        torch.no_grad(),
        RoutingRecorder(classifier, labels=too_short),
    ):
        classifier(test.X)
    with pytest.raises(MoEError, match="one-dimensional"):
        RoutingRecorder(classifier, labels={"task": np.zeros((2, 2))})


def test_model_without_moe_layers_is_moe_error():
    model = nn.Sequential(nn.Linear(3, 3))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(MoEError, match="no MoE layers"):
        RoutingRecorder(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


class _ElasticHost(nn.Module):
    """Calls its MoE with elastic arguments, as a supernet does."""

    def __init__(self) -> None:
        super().__init__()
        self.moe = MoE(4, 8, 4, 2)
        self.active = {"num_experts": 4, "top_k": 2, "hidden": 8}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe(x, **self.active)


def test_elastic_calls_are_recorded_within_the_full_layer_shape():
    torch.manual_seed(0)
    host = _ElasticHost()
    with torch.no_grad(), RoutingRecorder(host) as rec:
        host(torch.randn(2, 3, 4))
        host.active = {"num_experts": 2, "top_k": 1, "hidden": 4}
        host(torch.randn(2, 3, 4))
    layer = rec.recording().layers[0]
    assert layer.probs.shape == (12, 4) and layer.experts.shape == (12, 2)
    small = slice(6, 12)
    assert (layer.experts[small, 0] < 2).all() and (layer.experts[small, 1] == -1).all()
    assert (layer.probs[small, 2:] == 0).all()
    assert rec.stats().counts(0).sum() == 6 * 2 + 6


def test_standalone_layer_can_be_recorded():
    moe = MoE(4, 8, 3, 1)
    with torch.no_grad(), RoutingRecorder(moe, labels={"g": [0, 1, 1]}) as rec:
        moe(torch.randn(3, 5, 4))
    stats = rec.stats()
    assert stats.layers == ["MoE"]
    assert stats.by_label("g").shape == (2, 3)


def test_recorder_refuses_nested_use(classifier):
    rec = RoutingRecorder(classifier)
    with rec, pytest.raises(MoEError, match="already recording"):
        rec.__enter__()


def test_capacity_drops_are_recorded():
    torch.manual_seed(0)
    moe = MoE(4, 8, 4, 2, capacity_factor=0.5)
    seen = []
    moe.register_routing_hook(lambda m, r: seen.append(r))
    x = torch.randn(2, 20, 4)
    with torch.no_grad(), RoutingRecorder(moe) as rec:
        moe(x)
    layer = rec.recording().layers[0]
    assert np.array_equal(layer.dropped, (~seen[0].kept).numpy()) and layer.dropped.any()
    assert (layer.gates[layer.dropped] == 0).all()
    load = rec.stats().expert_load()
    assert load["count"].sum() == int(seen[0].kept.sum())
    assert load["dropped"].sum() == int((~seen[0].kept).sum())


class _Padded(nn.Module):
    """A token model called like a Hugging Face one: ``model(input_ids=, attention_mask=)``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        return self.inner(input_ids)


def test_padding_is_left_out_when_the_model_gets_an_attention_mask(classifier, tiny_tasks):
    X = tiny_tasks.test.X[:4]
    mask = torch.ones_like(X)
    mask[0, -3:] = 0  # right padding
    mask[2, :2] = 0  # left padding
    model = _Padded(classifier)
    with torch.no_grad(), RoutingRecorder(model) as rec:
        model(input_ids=X, attention_mask=mask)
    layer = rec.recording().layers[0]
    real = mask.reshape(-1).bool().numpy()
    assert len(layer) == int(real.sum())
    assert np.array_equal(layer.token, X.reshape(-1).numpy()[real])
    T = X.shape[1]
    assert np.array_equal(layer.position, np.tile(np.arange(T), 4)[real])
    assert np.array_equal(layer.example, np.repeat(np.arange(4), T)[real])
    with torch.no_grad(), RoutingRecorder(model, skip_padding=False) as everything:
        model(input_ids=X, attention_mask=mask)
    assert len(everything.recording().layers[0]) == X.numel()


def test_entering_again_appends_until_the_model_changes(classifier, tiny_tasks):
    X = tiny_tasks.test.X
    rec = RoutingRecorder(classifier)
    with torch.no_grad():
        with rec:
            classifier(X[:3])
        with rec:
            classifier(X[3:5])
    recording = rec.recording()
    assert recording.num_examples == 5 and recording.layers[0].example.max() == 4
    assert np.array_equal(recording.layers[0].token, X[:5].reshape(-1).numpy())
    baseline = _hook_count(classifier)
    with torch.no_grad():
        classifier.moes[1].router.weight.add_(0.1)  # e.g. a training step in between
    with pytest.raises(MoEError, match="routers changed"):
        rec.__enter__()
    assert _hook_count(classifier) == baseline  # refused before hooking anything
    assert rec.recording().num_examples == 5  # and what was recorded is kept


def test_fingerprints_identify_the_recorded_layers(classifier, tiny_tasks):
    with torch.no_grad(), RoutingRecorder(classifier) as rec:
        classifier(tiny_tasks.test.X[:2])
    prints = [fp for _, _, fp in rec.recording().signature]
    assert prints == [layer_fingerprint(m) for m in classifier.moes]
    assert prints[0] != prints[1]  # different router weights
    assert "modules=4" in prints[0] and "map=-" in prints[0]
