"""``ElasticCNN``: Once-for-All-style stages of inverted-residual blocks.

Each stage has elastic depth (it runs its first ``d`` blocks), elastic kernel size (centre crop
of the largest depthwise kernel, or OFA's learned kernel transforms) and elastic expand ratio
(the first ``in * e`` hidden channels, ordered by importance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nasviz.errors import ConfigError, ShapeError
from nasviz.space import Arch, SearchSpace
from nasviz.supernet._base import BNStats, Supernet, register_supernet
from nasviz.supernet._blocks import FIXED, Block
from nasviz.supernet._ops import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLinear,
    OptimizerState,
    export_bn,
    export_conv,
    export_linear,
    importance_order,
    permute_bn,
    permute_rows,
)
from nasviz.supernet._prepared import Prepared
from nasviz.supernet._validate import check_flag, check_int, check_ints

__all__ = ["CNNConfig", "ElasticCNN", "InvertedResidual"]


@dataclass(frozen=True)
class CNNConfig:
    """Configuration of an :class:`ElasticCNN` (see its arguments)."""

    in_channels: int = 1
    num_classes: int = 10
    input_size: int = 8
    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (16, 24, 32)
    strides: tuple[int, ...] = (2, 1, 2)
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    kernel_transform: bool = False


class _Stage(NamedTuple):
    depth: int
    kernel: int
    expand: int


class _Plan(NamedTuple):
    arch: Arch
    stages: tuple[_Stage, ...]


class _Block(nn.Module):
    """One elastic inverted-residual block: expand 1x1, depthwise kxk, project 1x1."""

    def __init__(self, cin: int, cout: int, stride: int, config: CNNConfig):
        super().__init__()
        hidden = cin * max(config.expands)
        self.cin, self.cout, self.stride = cin, cout, stride
        self.residual = stride == 1 and cin == cout
        self.expand = ElasticConv2d(cin, hidden, (1,))
        self.bn1 = ElasticBatchNorm2d(hidden)
        self.dw = ElasticConv2d(
            hidden,
            hidden,
            config.kernels,
            stride,
            depthwise=True,
            kernel_transform=config.kernel_transform,
        )
        self.bn2 = ElasticBatchNorm2d(hidden)
        self.project = ElasticConv2d(hidden, cout, (1,))
        self.bn3 = ElasticBatchNorm2d(cout)

    def forward(self, x: torch.Tensor, kernel: int, expand: int, run: _Run) -> torch.Tensor:
        # x: (B, cin, H, W) -> (B, cout, H/s, W/s)
        hidden = self.cin * expand
        p = run.prepared
        h = F.relu(run.bn(self.bn1, self.expand(x, hidden, None, p)))  # (B, hidden, H, W)
        h = F.relu(run.bn(self.bn2, self.dw(h, None, kernel, p)))  # (B, hidden, H/s, W/s)
        h = run.bn(self.bn3, self.project(h, None, None, p))  # (B, cout, H/s, W/s)
        return x + h if self.residual else h


class _Run(NamedTuple):
    """What one forward pass hands to every block besides the activations."""

    stats: BNStats | None  # the subnet's re-calibrated BN statistics, if any
    collect: dict | None  # a re-calibration pass's accumulators
    prepared: Prepared | None  # prepared weights (eval without autograd)

    def bn(self, layer: ElasticBatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        return layer(
            x, None if self.stats is None else self.stats[layer.key], self.collect, self.prepared
        )


class InvertedResidual(nn.Module):
    """A static (exported) inverted-residual block of plain torch layers."""

    def __init__(
        self,
        expand: nn.Conv2d,
        bn1: nn.BatchNorm2d,
        dw: nn.Conv2d,
        bn2: nn.BatchNorm2d,
        project: nn.Conv2d,
        bn3: nn.BatchNorm2d,
        residual: bool,
    ):
        super().__init__()
        self.expand, self.bn1, self.dw, self.bn2, self.project, self.bn3 = (
            expand,
            bn1,
            dw,
            bn2,
            project,
            bn3,
        )
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, cin, H, W) -> (B, cout, H/s, W/s)
        h = F.relu(self.bn1(self.expand(x)))
        h = F.relu(self.bn2(self.dw(h)))
        h = self.bn3(self.project(h))
        return x + h if self.residual else h


@register_supernet
class ElasticCNN(Supernet):
    """A stem conv, stages of elastic inverted-residual blocks, global pooling and a classifier.

    Search space, per stage ``i``: ``kernel.i`` (depthwise kernel), ``expand.i`` (expand ratio)
    and ``depth.i`` (blocks run). The defaults suit 8x8 digits on a CPU: three stages of up to
    four blocks, 16/24/32 channels, kernels {3, 5, 7}, expand {3, 4, 6}: 19,683 subnets.
    Every stage runs at least one block, so its kernel and expand ratio always matter and
    :meth:`canonical` is the identity: no two archs share a subnet.

    Args:
        in_channels: channels of the input images ``(in_channels, input_size, input_size)``.
        num_classes: output logits (at least 2).
        input_size: height and width of the input images.
        stem_channels: output channels of the fixed 3x3 stem.
        stage_channels: output channels of each stage.
        strides: stride of each stage (one per entry of ``stage_channels``).
        kernels: allowed depthwise kernel sizes (odd).
        expands: allowed expand ratios.
        depths: allowed numbers of blocks per stage.
        kernel_transform: OFA's learned kernel transforms instead of plain centre crops.
    """

    family = "ElasticCNN"
    input_kind = "images"
    config_class = CNNConfig
    shrink_order = ("kernel", "depth", "expand")
    width_groups = ("expand",)
    default_epochs = 10
    default_lr = 1e-2  # shared weights train slower: at 3e-3 subnets trailed standalone by 4.8

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 8,
        stem_channels: int = 16,
        stage_channels: Sequence[int] = (16, 24, 32),
        strides: Sequence[int] = (2, 1, 2),
        kernels: Sequence[int] = (3, 5, 7),
        expands: Sequence[int] = (3, 4, 6),
        depths: Sequence[int] = (2, 3, 4),
        kernel_transform: bool = False,
    ):
        config = CNNConfig(
            check_int("in_channels", in_channels, 1),
            check_int("num_classes", num_classes, 2),
            check_int("input_size", input_size, 1),
            check_int("stem_channels", stem_channels, 1),
            check_ints("stage_channels", stage_channels, choices=False),
            check_ints("strides", strides, choices=False),
            check_ints("kernels", kernels, odd=True),
            check_ints("expands", expands),
            check_ints("depths", depths),
            check_flag("kernel_transform", kernel_transform),
        )
        if len(config.stage_channels) != len(config.strides):
            raise ConfigError(
                f"stage_channels and strides need one entry per stage, got {len(stage_channels)} "
                f"stage_channels and {len(strides)} strides"
            )
        super().__init__(config)
        self.stem = ElasticConv2d(config.in_channels, config.stem_channels, (3,))
        self.stem_bn = ElasticBatchNorm2d(config.stem_channels)
        self.stages = nn.ModuleList()
        cin = config.stem_channels
        for cout, stride in zip(config.stage_channels, config.strides, strict=False):
            blocks = [
                _Block(cin if b == 0 else cout, cout, stride if b == 0 else 1, config)
                for b in range(max(config.depths))
            ]
            self.stages.append(nn.ModuleList(blocks))
            cin = cout
        self.head = ElasticLinear(cin, config.num_classes)
        n = len(config.stage_channels)
        self.space = SearchSpace(
            {
                **SearchSpace.repeated("kernel", n, config.kernels),
                **SearchSpace.repeated("expand", n, config.expands),
                **SearchSpace.repeated("depth", n, config.depths),
            }
        )
        self._finish_init()

    @classmethod
    def for_data(cls, data: Any, **kwargs: Any) -> ElasticCNN:
        """An ElasticCNN sized for a nasviz Dataset of ``(C, H, H)`` images."""
        shape = tuple(data.input_shape)
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ConfigError(
                f"ElasticCNN needs square images (C, H, H); the dataset has input_shape {shape}"
            )
        return cls(shape[0], data.num_classes, shape[1], **kwargs)

    def _make_plan(self, arch: Arch) -> _Plan:
        stages = zip(arch.group("depth"), arch.group("kernel"), arch.group("expand"), strict=False)
        return _Plan(arch, tuple(_Stage(*s) for s in stages))

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        cfg = self.config
        expected = (cfg.in_channels, cfg.input_size, cfg.input_size)
        if len(shape) != 4 or shape[1:] != expected:
            raise ShapeError(
                f"ElasticCNN expects images of shape (batch, {', '.join(map(str, expected))}); "
                f"got {tuple(shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, H) images
        self._check_input(x)
        state = self._state()
        stats = self._stats(state)
        run = _Run(stats, state.collect, self._prepared(state, stats))
        x = F.relu(run.bn(self.stem_bn, self.stem(x, None, None, run.prepared)))  # (B, stem, H, W)
        for blocks, stage in zip(self.stages, state.plan.stages, strict=False):
            for block in blocks[: stage.depth]:
                x = block(x, stage.kernel, stage.expand, run)  # (B, c_stage, H_s, W_s)
        x = x.mean((2, 3))  # (B, c_last)
        return self.head(x, None, run.prepared)  # (B, num_classes)

    def _export(self, plan: _Plan, stats: BNStats | None) -> nn.Module:
        modules = self._export_stem(stats)
        for blocks, stage in zip(self.stages, plan.stages, strict=False):
            for b in blocks[: stage.depth]:
                modules.append(self._export_inverted(b, stage.kernel, stage.expand, stats))
        return nn.Sequential(*modules, *self._export_head())

    @staticmethod
    def _export_bn(layer: ElasticBatchNorm2d, channels: int, stats: BNStats | None) -> nn.Module:
        return export_bn(layer, channels, None if stats is None else stats[layer.key])

    def _export_stem(self, stats: BNStats | None) -> list[nn.Module]:
        cfg = self.config
        return [
            export_conv(self.stem, cfg.in_channels, cfg.stem_channels, 3),
            self._export_bn(self.stem_bn, cfg.stem_channels, stats),
            nn.ReLU(),
        ]

    def _export_inverted(
        self, b: _Block, kernel: int, expand: int, stats: BNStats | None
    ) -> InvertedResidual:
        hidden = b.cin * expand
        return InvertedResidual(
            export_conv(b.expand, b.cin, hidden, 1),
            self._export_bn(b.bn1, hidden, stats),
            export_conv(b.dw, hidden, hidden, kernel),
            self._export_bn(b.bn2, hidden, stats),
            export_conv(b.project, hidden, b.cout, 1),
            self._export_bn(b.bn3, b.cout, stats),
            b.residual,
        )

    def _export_head(self) -> list[nn.Module]:
        return [
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            export_linear(self.head, self.head.in_features, self.config.num_classes),
        ]

    # ---- blocks: "stem", "stage{s}.{b}" (choices: kernel, expand), "head" ------------------
    def _block_space(self) -> tuple[Block, ...]:
        cfg = self.config
        choices = tuple(Arch(kernel=k, expand=e) for k in cfg.kernels for e in cfg.expands)
        blocks = [Block("stem", (), (FIXED,))]
        for s, stage in enumerate(self.stages):
            dims = (f"depth.{s}", f"kernel.{s}", f"expand.{s}")
            blocks += [Block(f"stage{s}.{b}", dims, choices) for b in range(len(stage))]
        return (*blocks, Block("head", (), (FIXED,)))

    def _block_choices(self, plan: _Plan) -> tuple[tuple[str, Arch], ...]:
        out = [("stem", FIXED)]
        for s, stage in enumerate(plan.stages):
            choice = Arch(kernel=stage.kernel, expand=stage.expand)
            out += [(f"stage{s}.{b}", choice) for b in range(stage.depth)]
        return (*out, ("head", FIXED))

    def _stage_block(self, name: str) -> _Block:
        s, b = name.removeprefix("stage").split(".")
        return self.stages[int(s)][int(b)]

    def _export_block(self, name: str, choice: Arch) -> nn.Module:
        if name == "stem":
            return nn.Sequential(*self._export_stem(None))
        if name == "head":
            return nn.Sequential(*self._export_head())
        return self._export_inverted(
            self._stage_block(name), choice["kernel"], choice["expand"], None
        )

    def _block_input_shape(
        self, name: str, choice: Arch, shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        batch, _, height, width = shape
        if name == "stem":
            return shape
        for blocks in self.stages:
            for b in blocks:
                if name != "head" and b is self._stage_block(name):
                    return (batch, b.cin, height, width)
                height, width = (height - 1) // b.stride + 1, (width - 1) // b.stride + 1
        return (batch, self.head.in_features, height, width)

    def _count_macs(self, plan: _Plan, shape: tuple[int, ...]) -> int:
        batch, channels, height, width = shape
        cfg = self.config
        total = height * width * cfg.stem_channels * channels * 9  # stem 3x3
        for blocks, stage in zip(self.stages, plan.stages, strict=False):
            for b in blocks[: stage.depth]:
                hidden = b.cin * stage.expand
                out_h, out_w = (height - 1) // b.stride + 1, (width - 1) // b.stride + 1
                total += height * width * hidden * b.cin  # expand 1x1
                total += out_h * out_w * hidden * stage.kernel**2  # depthwise kxk
                total += out_h * out_w * b.cout * hidden  # project 1x1
                height, width = out_h, out_w
        return batch * (total + self.head.in_features * cfg.num_classes)

    def count_params(self, arch: Mapping[str, Any]) -> int:
        plan = self._plan(arch)
        cfg = self.config
        total = cfg.stem_channels * cfg.in_channels * 9 + 2 * cfg.stem_channels
        for blocks, stage in zip(self.stages, plan.stages, strict=False):
            for b in blocks[: stage.depth]:
                hidden = b.cin * stage.expand
                total += b.cin * hidden + hidden * stage.kernel**2 + hidden * b.cout  # convs
                total += 2 * (2 * hidden + b.cout)  # BN affine
        return total + self.head.in_features * cfg.num_classes + cfg.num_classes

    @torch.no_grad()
    def reorder_channels(self, optimizer_state: OptimizerState | None = None) -> None:
        """Sorts each block's hidden channels by the L1 norm of their projection weights."""
        state = optimizer_state
        for blocks in self.stages:
            for b in blocks:
                order = importance_order(b.project.weight.abs().sum((0, 2, 3)))
                permute_rows(b.expand.weight, order, 0, state)
                permute_bn(b.bn1, order, state)
                permute_rows(b.dw.weight, order, 0, state)
                permute_bn(b.bn2, order, state)
                permute_rows(b.project.weight, order, 1, state)
        self.clear_calibration()
