"""A supernet family of one's own, written against the public extension point only (the hooks
of ``Supernet``, ``register_supernet`` and the public elastic layers): search, export, save and
load work on it unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasviz import ConfigError, SearchSpace, ShapeError
from nasviz.objectives import count_macs, params
from nasviz.search import Search
from nasviz.supernet import (
    ElasticLinear,
    Supernet,
    export_linear,
    importance_order,
    permute_rows,
    register_supernet,
)


@dataclass(frozen=True)
class WideConfig:
    in_features: int = 6
    widths: tuple[int, ...] = (2, 4, 8)


class Plan(NamedTuple):
    arch: Any
    width: int


@register_supernet
class ElasticWide(Supernet):
    """One hidden layer of elastic width: the smallest useful family."""

    family = "ElasticWide"
    config_class = WideConfig
    width_groups = ("width",)

    def __init__(self, in_features: int = 6, widths: tuple[int, ...] = (2, 4, 8)):
        super().__init__(WideConfig(in_features, tuple(widths)))
        self.hidden = ElasticLinear(in_features, max(widths))
        self.head = ElasticLinear(max(widths), 3)
        self.space = SearchSpace({"width": list(widths)})
        self.finish_init()

    def _make_plan(self, arch):
        return Plan(arch, arch["width"])

    def _check_shape(self, shape):
        if len(shape) != 2 or shape[1] != self.config.in_features:
            raise ShapeError(f"ElasticWide expects (batch, {self.config.in_features})")

    def forward(self, x):
        self._check_input(x)
        return self.head(F.relu(self.hidden(x, self.active_plan.width)), 3)

    def _export(self, plan, stats):
        hidden = export_linear(self.hidden, self.config.in_features, plan.width)
        return nn.Sequential(hidden, nn.ReLU(), export_linear(self.head, plan.width, 3))

    def count_params(self, arch):
        width = self.space.validate(arch)["width"]
        return (self.config.in_features + 1) * width + (width + 1) * 3

    def _count_macs(self, plan, shape):
        return shape[0] * (self.config.in_features * plan.width + plan.width * 3)

    @torch.no_grad()
    def reorder_channels(self, optimizer_state: Any = None):
        order = importance_order(self.head.weight.abs().sum(0))
        permute_rows(self.hidden.weight, order, 0, optimizer_state)
        permute_rows(self.hidden.bias, order, 0, optimizer_state)
        permute_rows(self.head.weight, order, 1, optimizer_state)


def test_a_family_of_ones_own_searches_exports_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    net = ElasticWide().eval()
    x = torch.randn(5, 6)
    for arch in net.space:
        static = net.export(arch)
        with net.subnet(arch):
            assert torch.allclose(net(x), static(x), atol=1e-6)  # the subnet is its export
        assert net.count_params(arch) == sum(p.numel() for p in static.parameters())
        assert net.count_macs(arch, (5, 6)) == count_macs(static, (5, 6))
    search = Search(net, objectives=[params()], strategy="random", budget=3, storage=":memory:")
    assert search.run().state == "finished" and len(search.results) == 3
    net.save(tmp_path / "wide.pt")
    again = Supernet.load(tmp_path / "wide.pt")  # found through the registry
    assert isinstance(again, ElasticWide) and again.config == net.config
    assert torch.equal(again(x), net(x))
    before = net(x)
    net.reorder_channels()  # the largest subnet computes the same function
    assert torch.allclose(net(x), before, atol=1e-6)


def test_registration_refuses_what_save_and_load_could_not_handle():
    with pytest.raises(ConfigError, match="decorates Supernet subclasses"):
        register_supernet(nn.Linear)
    with pytest.raises(ConfigError, match="must set family = '<name>' in its class body"):

        @register_supernet
        class Nameless(ElasticWide):
            pass

    with pytest.raises(ConfigError, match="family 'ElasticMLP' is taken by"):

        @register_supernet
        class Impostor(ElasticWide):
            family = "ElasticMLP"

    with pytest.raises(ConfigError, match="config_class must be a frozen dataclass"):

        @register_supernet
        class Loose(ElasticWide):
            family = "Loose"
            config_class = dict
