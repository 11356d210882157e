"""Per-layer sensitivity and the quantization figures (asserted on their info records)."""

from __future__ import annotations

import pytest
from quant_helpers import state_hash

from nasviz.errors import ConfigError
from nasviz.objectives import evaluate_accuracy
from nasviz.quant import QuantSupernet, describe, quant_space, quantize, sensitivity
from nasviz.supernet import ElasticMLP
from nasviz.viz import (
    bit_strip_figure,
    bit_strip_info,
    bit_strip_svg,
    sensitivity_figure,
    sensitivity_info,
)


def test_sensitivity_quantizes_one_layer_at_a_time(trained_mlp, digits_data):
    before = state_hash(trained_mlp)
    frame = sensitivity(trained_mlp, digits_data, bits=2)
    assert list(frame["layer"]) == ["1", "3", "5"] and set(frame["kernel"]) == {"simulated"}
    base = evaluate_accuracy(trained_mlp, digits_data.val)
    assert (frame["baseline"] == base).all()
    for row in frame.itertuples():  # each row equals quantizing that layer alone
        alone = quantize(trained_mlp, {row.layer: 2})
        assert row.accuracy == pytest.approx(evaluate_accuracy(alone, digits_data.val))
        assert row.drop == pytest.approx(base - row.accuracy)
    assert frame["drop"].max() > 0  # 2 bits hurts somewhere
    assert state_hash(trained_mlp) == before
    with pytest.raises(ConfigError, match="already quantized"):
        sensitivity(quantize(trained_mlp, 8), digits_data)


def test_sensitivity_figure_shows_the_drops_and_says_simulated(trained_mlp, digits_data):
    frame = sensitivity(trained_mlp, digits_data, bits=3, include=["1", "5"])
    info = sensitivity_info(frame)
    assert info.layers == ("1", "5") and info.bits == 3 and info.kernel == "simulated"
    assert info.drops == tuple(frame["drop"])
    fig = sensitivity_figure(info)
    assert list(fig.data[0].x) == list(info.drops) and "simulated" in fig.layout.title.text


def test_bit_strip_from_a_quantized_model_and_from_a_joint_arch(trained_mlp):
    q = quantize(trained_mlp, {"1": 4, "3": 8})
    info = bit_strip_info(describe(q))
    assert info.layers == ("1", "3", "5") and info.bits == (4, 8, 32)
    assert info.weights == (64 * 64, 64 * 64, 64 * 10)
    assert info.mean_bits == pytest.approx((4 * 4096 + 8 * 4096 + 32 * 640) / (8192 + 640))
    fig = bit_strip_figure(info)
    assert [t.x[0] for t in fig.data] == list(info.weights)
    assert [t.base[0] for t in fig.data] == [0, 4096, 8192]
    assert "simulated" in fig.layout.title.text
    svg = bit_strip_svg(info)
    assert svg.count('class="bits"') == 3 and 'data-layer="3" data-bits="8"' in svg

    net = ElasticMLP(64, 10, widths=(16, 32), depths=(1, 2))
    qnet = QuantSupernet(net, quant_space(net, bits=(2, 16)))
    arch = qnet.space.sample(0)
    joint = bit_strip_info(qnet.bits_of(arch))
    assert joint.layers == tuple(qnet.bits_of(arch)) and set(joint.bits) <= {2, 16}
