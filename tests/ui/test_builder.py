"""SupernetBuilder: controls -> space size, params and MACs range -> a built supernet."""

from __future__ import annotations

import pytest

from nasviz import ConfigError, macs, params
from nasviz.objectives import count_macs, count_params
from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer
from nasviz.ui import SupernetBuilder


def test_summary_follows_the_controls_and_build_yields_the_net():
    builder = SupernetBuilder("ElasticMLP")
    builder.controls["widths"].value = (32, 64)
    builder.controls["depths"].value = (1, 2)
    expected = ElasticMLP(widths=(32, 64), depths=(1, 2))
    assert builder.facts["size"] == expected.space.size == 2 * 2 * 2
    assert builder.facts["params_max"] == params()(expected, expected.space.largest())
    assert builder.facts["macs_min"] == macs((1, 64))(expected, expected.space.smallest())
    assert f"{expected.space.size:,}</b> subnets" in builder.summary.value
    builder.build_button.click()
    assert isinstance(builder.net, ElasticMLP) and builder.space == expected.space


def test_switching_family_and_moe():
    builder = SupernetBuilder("ElasticCNN")
    cnn = ElasticCNN()
    assert builder.facts["size"] == cnn.space.size
    builder.family_picker.value = "ElasticTransformer"
    dense = builder.facts["size"]
    builder.moe.value = True
    assert builder.facts["size"] > dense
    net = builder.build()
    assert isinstance(net, ElasticTransformer) and net.config.moe


def test_empty_choice_is_reported_and_blocks_build():
    builder = SupernetBuilder("ElasticMLP")
    builder.controls["depths"].value = ()
    assert "choose at least one value for [&#x27;depths&#x27;]" in builder.summary.value
    assert builder.build_button.disabled
    with pytest.raises(ConfigError, match="unknown family"):
        SupernetBuilder("ResNet")


@pytest.mark.parametrize(
    ("family", "moe", "shape"),
    [("ElasticCNN", False, (1, 1, 8, 8)), ("ElasticTransformer", True, (1, 16))],
)
def test_params_and_macs_are_those_of_the_exported_subnets(family, moe, shape):
    builder = SupernetBuilder(family)
    builder.moe.value = moe
    net = builder.build()
    small, large = net.space.smallest(), net.space.largest()
    facts = builder.facts
    # measured on standalone exports (torch's FLOP counter), not on the supernet's closed forms
    assert facts["params_min"] == count_params(net.export(small)) < facts["params_max"]
    assert facts["params_max"] == count_params(net.export(large))
    assert facts["macs_min"] == count_macs(net.export(small), shape) < facts["macs_max"]
    assert facts["macs_max"] == count_macs(net.export(large), shape)
    assert f"{facts['macs_max']:,}" in builder.summary.value
