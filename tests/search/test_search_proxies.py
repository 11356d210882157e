"""Zero-cost proxies: what they compute, that they never change the user's model (even when
they fail), and their two uses: cheap objectives of a search and predictor features."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasviz.data import digits
from nasviz.errors import ConfigError, ShapeError
from nasviz.objectives import accuracy, params
from nasviz.search import PredictorStrategy, Search, grad_norm, naswot, synflow
from nasviz.supernet import ElasticCNN, ElasticMLP


@pytest.fixture(scope="module")
def data():
    return digits(seed=0, flat=True)


def _mlp() -> ElasticMLP:
    torch.manual_seed(0)
    return ElasticMLP(64, 10, widths=(8, 16, 32), depths=(1, 2))


def _fingerprint(model: nn.Module) -> tuple[str, bool, list]:
    """Weights, train/eval mode and gradients: everything a measurement could change."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode() + t.detach().numpy().tobytes())
    return h.hexdigest(), model.training, [p.grad for p in model.parameters()]


def test_synflow_is_the_sum_of_theta_times_its_gradient_on_absolute_weights():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    torch.manual_seed(1)
    expected = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    expected.load_state_dict(model.state_dict())
    expected = expected.double()
    with torch.no_grad():
        for p in expected.parameters():
            p.abs_()
    expected(torch.ones(1, 3, dtype=torch.float64)).sum().backward()
    score = sum(float((p * p.grad).abs().sum().detach()) for p in expected.parameters())
    assert synflow((1, 3))(model) == pytest.approx(score, rel=1e-12)


def test_naswot_is_the_log_determinant_of_the_activation_pattern_kernel():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    X, y = torch.randn(4, 5), torch.zeros(4, dtype=torch.long)
    codes = (model[0](X) > 0).double()  # (4, 6)
    K = codes @ codes.T + (1 - codes) @ (1 - codes).T
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1)
    assert torch.equal(K, 6 - hamming.double())  # agreeing units = units - Hamming distance
    expected = np.linalg.slogdet(K.numpy() + np.eye(4) * 6e-6)[1]
    assert naswot((X, y))(model) == pytest.approx(expected)

    class Functional(nn.Module):  # F.relu and torch.relu count as ReLUs too
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 6), nn.Linear(6, 3)

        def forward(self, x):
            return self.b(F.relu(self.a(x)))

    functional = Functional()
    functional.a.load_state_dict(model[0].state_dict())
    functional.b.load_state_dict(model[2].state_dict())
    assert naswot((X, y))(functional) == pytest.approx(expected)
    with pytest.raises(ConfigError, match="needs a network with ReLU"):
        naswot((X, y))(nn.Sequential(nn.Linear(5, 3), nn.Tanh()))


def test_grad_norm_is_the_norm_of_the_loss_gradient(data):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    X, y = data.train.X[:32], data.train.y[:32]
    copy = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    copy.load_state_dict(model.state_dict())
    F.cross_entropy(copy(X), y).backward()
    expected = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in copy.parameters()))
    assert grad_norm(data, batch_size=32)(model) == pytest.approx(float(expected), rel=1e-6)


def test_proxies_never_change_the_model_even_when_they_fail(data):
    net = _mlp()
    net.train()
    before = _fingerprint(net)
    proxies = [synflow((1, 64)), grad_norm(data), naswot(data)]
    scores = {p.name: [p(net, a) for a in net.space] for p in proxies}
    for name, values in scores.items():
        assert np.all(np.isfinite(values)) and len(set(values)) > 1, name
    wrong = synflow((1, 7))  # inputs of the wrong width: the forward pass fails
    with pytest.raises(ShapeError, match="input of shape \\(1, 7\\)"):
        wrong(net, net.space.largest())
    with pytest.raises(ShapeError):
        grad_norm((torch.zeros(4, 7), torch.zeros(4, dtype=torch.long)))(net, net.space.largest())
    after = _fingerprint(net)
    assert after[:2] == before[:2] and all(g is None for g in after[2])
    cnn = ElasticCNN(
        stem_channels=8, stage_channels=(8,), strides=(2,), kernels=(3,), expands=(2,), depths=(1,)
    )
    cnn_before = _fingerprint(cnn)
    assert np.isfinite(naswot(digits(seed=0))(cnn, cnn.space.largest()))
    assert _fingerprint(cnn)[:2] == cnn_before[:2]


def test_bad_proxy_input_is_a_config_error():
    with pytest.raises(ConfigError, match="proxy data must be"):
        naswot("digits")
    with pytest.raises(ConfigError, match="batch_size"):
        grad_norm((torch.zeros(4, 2), torch.zeros(4)), batch_size=1)
    with pytest.raises(ShapeError, match="input_shape"):
        synflow((0, 3))
    with pytest.raises(ConfigError, match=r"includes the batch: \(1, 64\) for one example"):
        synflow((64,))
    with pytest.raises(ConfigError, match="need a supernet"):
        synflow((1, 3))(None, {"x": 1})
    with pytest.raises(ConfigError, match="features are Objectives"):
        PredictorStrategy(features=["synflow"])


def test_proxies_as_cheap_objectives_and_as_predictor_features(data):
    net = _mlp()
    val = (data.val.X[:100], data.val.y[:100])
    search = Search(
        net,
        objectives=[accuracy(val), params(), naswot(data, batch_size=32)],
        strategy="random",
        budget=6,
        storage=":memory:",
        seed=0,
    )
    assert search.run().state == "finished", search.traceback
    assert search.results["naswot"].notna().all() and search.results["naswot"].nunique() > 1

    measured = []
    feature = synflow((1, 64))
    counting = type(feature)(
        feature.name, "maximize", lambda m, a: measured.append(a) or feature(m, a), cheap=True
    )
    strategy = PredictorStrategy(
        batch_size=3, initial=4, inner_steps=60, inner_population=8, features=[counting]
    )
    search = Search(
        net,
        objectives=[accuracy(val), params()],
        strategy=strategy,
        budget=10,
        storage=":memory:",
        seed=0,
    )
    assert search.run().state == "finished", search.traceback
    evaluated = {
        net.canonical(net.space.validate(r))
        for r in search.results[list(net.space.names)].to_dict("records")
    }
    assert evaluated <= set(measured)  # every evaluated arch was measured as a feature
    assert len(search.cycles) >= 1 and search.strategy.settings()["features"] == ["synflow"]
