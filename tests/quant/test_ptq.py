"""Post-training quantization of any model: bytes, accuracy, storage, real kernels, bad input."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
import transformers as tf
from quant_helpers import state_hash
from torch import nn

from nasviz.errors import ConfigError, ShapeError
from nasviz.objectives import evaluate_accuracy
from nasviz.quant import (
    QuantizedWeight,
    convert,
    count_bytes,
    describe,
    is_quantized,
    model_bytes,
    prepare_qat,
    quantize,
)
from nasviz.supernet import ElasticCNN


def _small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        # layer 0: 128 weights, 16 channels; layer 2: 64 weights, 4 channels; biases 16 + 4 floats
        (8, (128 + 16 * 4) + (64 + 4 * 4) + 20 * 4),  # symmetric: codes + float32 scales
        (4, (64 + 16 * 4 + 16) + (32 + 4 * 4 + 4) + 20 * 4),  # affine: + uint8 zero points
        (3, (48 + 16 * 4 + 16) + (24 + 4 * 4 + 4) + 20 * 4),  # 3 bits counted as 3 bits
        (2, (32 + 16 * 4 + 16) + (16 + 4 * 4 + 4) + 20 * 4),
        (16, (128 + 64) * 2 + 20 * 4),
    ],
)
def test_bytes_equal_a_hand_count(bits, expected):
    model = _small()
    assert count_bytes(model) == (128 + 64 + 20) * 4
    q = quantize(model, bits)
    assert count_bytes(q) == expected
    assert model_bytes()(q) == expected
    assert describe(q)["bytes"].sum() == expected - 20 * 4  # weights only


def test_per_layer_bits_and_include_exclude():
    model = _small()
    q = quantize(model, {"0": 4, "2": 8})
    assert describe(q).set_index("layer")["bits"].to_dict() == {"0": 4, "2": 8}
    q = quantize(model, 4, exclude="2")
    assert describe(q).set_index("layer")["bits"].to_dict() == {"0": 4, "2": 32}
    assert describe(q).set_index("layer")["kernel"].to_dict() == {"0": "simulated", "2": "float"}


def test_eight_bit_weights_stay_close_to_full_precision(trained_mlp, digits_data):
    """Documented tolerance: 8-bit weight-only logits within 2% of the largest logit, accuracy
    within 0.5 points; 4 bits within 10% and 3 points."""
    X = digits_data.val.X
    with torch.no_grad():
        ref = trained_mlp(X)
        q8, q4 = quantize(trained_mlp, 8)(X), quantize(trained_mlp, 4)(X)
    scale = ref.abs().max()
    assert (q8 - ref).abs().max() <= 0.02 * scale
    assert (q4 - ref).abs().max() <= 0.10 * scale
    assert (q8 - ref).abs().max() < (q4 - ref).abs().max()
    base = evaluate_accuracy(trained_mlp, digits_data.val)
    assert base - evaluate_accuracy(quantize(trained_mlp, 8), digits_data.val) <= 0.5
    assert base - evaluate_accuracy(quantize(trained_mlp, 4), digits_data.val) <= 3.0


@pytest.mark.parametrize("mode", ["weight", "dynamic"])
def test_quantized_state_dict_loads_with_weights_only(trained_mlp, digits_data, mode):
    q = quantize(trained_mlp, 4 if mode == "weight" else 8, mode=mode)
    buffer = io.BytesIO()
    torch.save(q.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)  # other weights: the loaded state must replace them
    target = quantize(fresh, 4 if mode == "weight" else 8, mode=mode)
    target.load_state_dict(state)
    X = digits_data.val.X[:32]
    with torch.no_grad():
        torch.testing.assert_close(target(X), q(X))
    if mode == "weight":  # the float weights are not stored, only packed codes
        assert state["1.parametrizations.weight.original"].numel() == 0
        assert state["1.parametrizations.weight.0.packed"].numel() == 64 * 64 // 2


def test_dynamic_int8_uses_real_kernels_and_four_times_fewer_weight_bytes(trained_mlp, digits_data):
    q = quantize(trained_mlp, mode="dynamic")
    table = describe(q)
    assert set(table["kernel"]) == {"real"} and set(table["bits"]) == {8}
    assert "DynamicQuantizedLinear" in repr(q)
    fp32_bytes = 4 * table["weights"].sum()
    codes = table["weights"].sum()  # one byte per weight, plus per-channel scales/zero points
    assert codes * 4 == fp32_bytes and table["bytes"].sum() < fp32_bytes / 3
    X = digits_data.val.X
    with torch.no_grad():
        assert (q(X) - trained_mlp(X)).abs().max() <= 0.05 * trained_mlp(X).abs().max()
    assert is_quantized(q)


def _gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = tf.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=2)
    return tf.GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("mode", ["weight", "dynamic"])
def test_hugging_face_gpt2_quantizes_and_stays_close(mode):
    model = _gpt2()
    before = state_hash(model)
    ids = torch.randint(0, 50, (2, 10), generator=torch.Generator().manual_seed(0))
    q = quantize(model, 8, mode=mode)
    with torch.no_grad():
        ref, out = model(ids).logits, q(ids).logits
    assert (out - ref).abs().max() <= 0.05 * ref.abs().max()
    kinds = set(describe(q)["kind"])
    assert kinds == ({"Conv1D"} if mode == "weight" else {"DynamicQuantizedLinear"})
    assert state_hash(model) == before  # tied lm_head / embedding untouched too
    assert "lm_head" not in set(describe(q)["layer"])  # tied weights are never quantized


def test_static_int8_on_a_conv_net_with_calibration(digits_data):
    torch.manual_seed(0)
    net = ElasticCNN()
    static = net.export(net.smallest())
    before = state_hash(static)
    q = quantize(static, mode="static", calibration=digits_data)
    table = describe(q)
    assert set(table["kernel"]) == {"real"} and len(table) >= 3
    X = digits_data.val.X[:64]
    with torch.no_grad():
        ref, out = static(X), q(X)
    assert torch.corrcoef(torch.stack([ref.flatten(), out.flatten()]))[0, 1] > 0.99
    # calibration from an iterable of (X, y) batches works too
    quantize(static, mode="static", calibration=digits_data.train.loader(64))
    assert state_hash(static) == before


def test_bad_input_raises_nasviz_errors_and_leaves_the_model_unchanged(trained_mlp):
    model = trained_mlp
    before = state_hash(model)
    cases = [
        (ConfigError, "bits", lambda: quantize(model, 5)),
        (ConfigError, "bits", lambda: quantize(model, {"1": 6})),
        (ConfigError, "does not have", lambda: quantize(model, {"7": 4})),
        (ConfigError, "matches no", lambda: quantize(model, 4, include="nope.*")),
        (ConfigError, "mode", lambda: quantize(model, 8, mode="fp8")),
        (ConfigError, "8 bits", lambda: quantize(model, 4, mode="dynamic")),
        (ConfigError, "calibration", lambda: quantize(model, mode="static")),
        (
            ShapeError,
            "calibration",
            lambda: quantize(model, mode="static", calibration=torch.randn(8, 3, 5)),
        ),
        (
            ConfigError,
            "calibration",
            lambda: quantize(model, mode="static", calibration="data.csv"),
        ),
    ]
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            call()
        assert state_hash(model) == before


@pytest.mark.parametrize("mode", ["weight", "dynamic", "qat"])
def test_quantizing_a_quantized_model_is_a_clear_error(trained_mlp, mode):
    q = prepare_qat(trained_mlp, 4) if mode == "qat" else quantize(trained_mlp, 8, mode=mode)
    before = state_hash(q)
    with pytest.raises(ConfigError, match="already quantized"):
        quantize(q, 4)
    assert state_hash(q) == before


def test_prepare_qat_trains_through_rounded_weights_and_converts(trained_mlp, digits_data):
    before = state_hash(trained_mlp)
    qat = prepare_qat(trained_mlp, 4)
    layer = qat[1]
    assert all(len(torch.unique(row)) <= 16 for row in layer.weight.detach())  # rounded forward
    original = layer.parametrizations.weight.original
    start = original.detach().clone()
    opt = torch.optim.SGD(qat.parameters(), lr=0.1)
    X, y = digits_data.train.X[:64], digits_data.train.y[:64]
    loss = F.cross_entropy(qat(X), y)
    loss.backward()
    assert original.grad is not None and original.grad.abs().sum() > 0  # straight through
    opt.step()
    assert not torch.equal(original.detach(), start)  # the float weights train
    stored = convert(qat)
    assert isinstance(stored[1].parametrizations.weight[0], QuantizedWeight)
    with torch.no_grad():
        torch.testing.assert_close(stored(X), qat(X), atol=1e-5, rtol=1e-5)
    assert state_hash(trained_mlp) == before
    with pytest.raises(ConfigError, match="prepare_qat"):
        convert(trained_mlp)


def test_a_call_that_would_quantize_nothing_is_refused():
    """Never an unquantized copy returned as if quantized."""
    from nasviz.quant import prepare_qat

    class Tied(nn.Module):  # a weight shared by two modules is never quantized
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(16, 8)
            self.head = nn.Linear(8, 16, bias=False)
            self.head.weight = self.embed.weight

        def forward(self, x):
            return self.head(self.embed(x))

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    cases = [
        (lambda: quantize(Tied(), 4), "has no quantizable layer"),
        (lambda: quantize(model, 4, exclude="*"), "leave no layer to quantize; layers: 0, 2"),
        (lambda: quantize(model, {}), "bits={} names no layer"),
        (lambda: prepare_qat(model, 4, include="2", exclude="2"), "leave no layer"),
    ]
    for call, needle in cases:
        with pytest.raises(ConfigError, match=needle):
            call()
