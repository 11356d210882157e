"""Small seeded models of the shapes nasviz prunes: plain MLPs, CNNs with BatchNorm and
inverted-residual blocks (the shapes of exported supernet subnets)."""

from __future__ import annotations

import itertools

import torch
from torch import nn


def mlp(sizes: tuple[int, ...] = (64, 48, 32, 10), seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


class InvertedResidual(nn.Module):
    """1x1 expand -> BN -> ReLU6 -> depthwise kxk -> BN -> ReLU6 -> 1x1 project -> BN (+ x)."""

    def __init__(self, c: int, expand: int, kernel: int = 3):
        super().__init__()
        h = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6())
        self.dw = nn.Sequential(
            nn.Conv2d(h, h, kernel, padding=kernel // 2, groups=h, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU6(),
        )
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.dw(self.expand(x)))  # (B, c, H, W)


def cnn(width: int = 8, seed: int = 0) -> nn.Sequential:
    """Conv -> BN -> ReLU -> inverted residual -> Conv -> ReLU -> pool -> Linear -> ReLU -> Linear."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        InvertedResidual(width, 3),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    with torch.no_grad():  # non-trivial BatchNorm statistics, so equality tests mean something
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    return model.eval()


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter and buffer, to check that a model did not change."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    now = model.state_dict()
    return set(now) == set(before) and all(torch.equal(now[k], before[k]) for k in before)


def parametrizations(model: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every parametrized tensor as (module, attribute, parametrization class names)."""
    from torch.nn.utils import parametrize

    return [
        (name, attr, tuple(type(p).__name__ for p in module.parametrizations[attr]))
        for name, module in model.named_modules()
        if parametrize.is_parametrized(module)
        for attr in module.parametrizations
    ]


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], list]:
    """Parameters, buffers and parametrizations, to check that an error changed nothing."""
    return state(model), parametrizations(model)


def unchanged(model: nn.Module, before: tuple[dict[str, torch.Tensor], list]) -> bool:
    return same_state(model, before[0]) and parametrizations(model) == before[1]
