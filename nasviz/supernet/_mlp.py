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

from nasviz.errors import ShapeError
from nasviz.space import Arch, SearchSpace
from nasviz.supernet._base import BNStats, Supernet, register_supernet
from nasviz.supernet._blocks import Block
from nasviz.supernet._ops import (
    ElasticLinear,
    OptimizerState,
    export_linear,
    importance_order,
    permute_rows,
)
from nasviz.supernet._validate import check_int, check_ints

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


@register_supernet
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
        config = MLPConfig(
            check_int("in_features", in_features, 1),
            check_int("num_classes", num_classes, 2),
            check_ints("widths", widths),
            check_ints("depths", depths),
        )
        super().__init__(config)
        max_width, max_depth = config.widths[-1], config.depths[-1]
        self.layers = nn.ModuleList(
            ElasticLinear(config.in_features if i == 0 else max_width, max_width)
            for i in range(max_depth)
        )
        self.head = ElasticLinear(max_width, config.num_classes)
        self.space = SearchSpace(
            {
                "depth": list(config.depths),
                **SearchSpace.repeated("width", max_depth, config.widths),
            }
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

    # ---- blocks: "layer{i}" (choices: in, width; layer0 takes the input), "head" (in) ------
    def _block_space(self) -> tuple[Block, ...]:
        cfg = self.config
        widths = cfg.widths
        blocks = []
        for i in range(max(cfg.depths)):
            if i == 0:
                dims, choices = ("depth", "width.0"), tuple(Arch(width=w) for w in widths)
            else:
                dims = ("depth", f"width.{i - 1}", f"width.{i}")
                choices = tuple(Arch({"in": a, "width": w}) for a in widths for w in widths)
            blocks.append(Block(f"layer{i}", dims, choices))
        dims = ("depth", *(f"width.{i}" for i in range(max(cfg.depths))))
        return (*blocks, Block("head", dims, tuple(Arch({"in": w}) for w in widths)))

    def _block_choices(self, plan: _Plan) -> tuple[tuple[str, Arch], ...]:
        out = [("layer0", Arch(width=plan.widths[0]))]
        for i in range(1, len(plan.widths)):
            out.append((f"layer{i}", Arch({"in": plan.widths[i - 1], "width": plan.widths[i]})))
        return (*out, ("head", Arch({"in": plan.widths[-1]})))

    def _export_block(self, name: str, choice: Arch) -> nn.Module:
        if name == "head":
            return export_linear(self.head, choice["in"], self.config.num_classes)
        i = int(name.removeprefix("layer"))
        width_in = self.config.in_features if i == 0 else choice["in"]
        linear = export_linear(self.layers[i], width_in, choice["width"])
        return nn.Sequential(*([nn.Flatten()] if i == 0 else []), linear, nn.ReLU())

    def _block_input_shape(
        self, name: str, choice: Arch, shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        return shape if name == "layer0" else (shape[0], choice["in"])

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
