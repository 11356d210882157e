"""``ElasticMLP``: a multi-layer perceptron with elastic depth and per-layer width."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nasviz.errors import ConfigError, ShapeError
from nasviz.space import Arch, SearchSpace
from nasviz.supernet._base import BNStats, Supernet
from nasviz.supernet._ops import (
    ElasticLinear,
    OptimizerState,
    export_linear,
    importance_order,
    permute_rows,
)

__all__ = ["ElasticMLP", "MLPConfig"]


@dataclass(frozen=True)
class MLPConfig:
    """Configuration of an :class:`ElasticMLP` (see its arguments)."""

    in_features: int = 64
    num_classes: int = 10
    widths: tuple[int, ...] = (32, 64, 128)
    depths: tuple[int, ...] = (1, 2, 3)


class _Plan(NamedTuple):
    arch: Arch
    widths: tuple[int, ...]  # active width of each active hidden layer


class ElasticMLP(Supernet):
    """Hidden layers ``Linear -> ReLU`` with elastic depth and elastic width per layer.

    Search space: ``depth`` (how many hidden layers run) and ``width.0 .. width.{D-1}`` (units
    of each hidden layer, the first ones by importance); widths of layers past ``depth`` do not
    change the subnet. Inputs are ``(B, in_features)``; any ``(B, *shape)`` whose trailing size
    is ``in_features`` (digits' ``(1, 8, 8)``) is flattened.

    Args:
        in_features: input features.
        num_classes: output logits.
        widths: allowed hidden widths (the largest is stored).
        depths: allowed numbers of hidden layers (the largest is stored).

    Example:
        >>> net = ElasticMLP(64, 10)
        >>> with net.subnet(net.smallest()):
        ...     logits = net(torch.randn(8, 64))
    """

    family = "ElasticMLP"
    config_class = MLPConfig
    shrink_order = ("depth", "width")
    width_groups = ("width",)
    default_epochs = 30

    def __init__(
        self,
        in_features: int = 64,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        depths: Sequence[int] = (1, 2, 3),
    ):
        widths, depths = tuple(sorted(set(map(int, widths)))), tuple(sorted(set(map(int, depths))))
        if in_features < 1 or num_classes < 2:
            raise ConfigError(
                f"need in_features >= 1 and num_classes >= 2, got {in_features}, {num_classes}"
            )
        if not widths or widths[0] < 1 or not depths or depths[0] < 1:
            raise ConfigError(
                f"widths and depths must be non-empty positive ints, got {widths}, {depths}"
            )
        super().__init__(MLPConfig(int(in_features), int(num_classes), widths, depths))
        max_width, max_depth = widths[-1], depths[-1]
        self.layers = nn.ModuleList(
            ElasticLinear(in_features if i == 0 else max_width, max_width) for i in range(max_depth)
        )
        self.head = ElasticLinear(max_width, num_classes)
        self.space = SearchSpace(
            {"depth": list(depths), **SearchSpace.repeated("width", max_depth, widths)}
        )
        self._finish_init()

    @classmethod
    def for_data(cls, data: Any, **kwargs: Any) -> ElasticMLP:
        """An ElasticMLP sized for a nasviz Dataset (inputs flattened, its classes)."""
        return cls(math.prod(data.input_shape), data.num_classes, **kwargs)

    def canonical(self, arch: Mapping[str, Any]) -> Arch:
        """``arch`` with the widths of layers past ``depth`` (unused) set to the smallest width."""
        arch = self.space.validate(arch)
        unused = range(arch["depth"], max(self.config.depths))
        return arch.replace(**{f"width.{i}": self.config.widths[0] for i in unused})

    def _make_plan(self, arch: Arch) -> _Plan:
        return _Plan(arch, arch.group("width")[: arch["depth"]])

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        n = self.config.in_features
        if len(shape) < 2 or math.prod(shape[1:]) != n:
            raise ShapeError(
                f"ElasticMLP expects input of shape (batch, {n}) or (batch, *shape) with {n} "
                f"features; got {tuple(shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_features) or (B, *shape) with prod(shape) == in_features
        self._check_input(x)
        if x.ndim != 2:
            x = x.flatten(1)  # (B, F)
        state = self._state()
        prepared = self._prepared(state, None)
        for layer, width in zip(self.layers, state.plan.widths, strict=False):
            x = F.relu(layer(x, width, prepared))  # (B, width)
        return self.head(x, None, prepared)  # (B, num_classes)

    def _export(self, plan: _Plan, stats: BNStats | None) -> nn.Module:
        modules: list[nn.Module] = [nn.Flatten()]
        width_in = self.config.in_features
        for layer, width in zip(self.layers, plan.widths, strict=False):
            modules += [export_linear(layer, width_in, width), nn.ReLU()]
            width_in = width
        modules.append(export_linear(self.head, width_in, self.config.num_classes))
        return nn.Sequential(*modules)

    def _count_macs(self, plan: _Plan, shape: tuple[int, ...]) -> int:
        sizes = (self.config.in_features, *plan.widths, self.config.num_classes)
        return shape[0] * sum(a * b for a, b in itertools.pairwise(sizes))

    def count_params(self, arch: Mapping[str, Any]) -> int:
        plan = self._plan(arch)
        total, width_in = 0, self.config.in_features
        for width in (*plan.widths, self.config.num_classes):
            total += width * width_in + width
            width_in = width
        return total

    @torch.no_grad()
    def reorder_channels(self, optimizer_state: OptimizerState | None = None) -> None:
        """Sorts each hidden layer's units by the L1 norm of their outgoing weights."""
        for i, layer in enumerate(self.layers):
            after = self.layers[i + 1] if i + 1 < len(self.layers) else self.head
            order = importance_order(after.weight.abs().sum(0))
            permute_rows(layer.weight, order, 0, optimizer_state)
            permute_rows(layer.bias, order, 0, optimizer_state)
            permute_rows(after.weight, order, 1, optimizer_state)
        self.clear_calibration()
