"""Elastic layers: each holds the largest weights and computes a smaller layer from views.

A subnet's layer uses the *first* ``k`` output channels / features and, for convolutions, the
centre ``k x k`` crop of the kernel (or, with ``kernel_transform``, OFA's learned transforms of
that crop). Input sizes are read from the input tensor, so an elastic layer follows whatever its
predecessor produced. Nothing is copied per call where a view will do; the ``export_*``
functions copy the slices out into plain torch layers. Each layer's ``slices(*sizes)`` says
what a forward reads: training takes them per call (gradients flow through the views), eval
forwards without autograd get them once per subnet from a :class:`Prepared` store.

The layers subclass their torch counterparts (same parameters, same initialization) and are
stateless about the subnet: the active sizes come in as forward arguments.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasviz.errors import ConfigError
from nasviz.supernet._prepared import Prepared

__all__ = [
    "ElasticBatchNorm2d",
    "ElasticConv2d",
    "ElasticLayerNorm",
    "ElasticLinear",
    "OptimizerState",
    "depthwise_matmul",
    "export_bn",
    "export_conv",
    "export_linear",
    "importance_order",
    "permute_bn",
    "permute_rows",
]


class ElasticLinear(nn.Linear):
    """``nn.Linear`` of the largest size; ``forward(x, out_features)`` uses the first
    ``out_features`` outputs and as many inputs as ``x`` has."""

    def slices(
        self, in_features: int, out_features: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The ``(out, in)`` weight and the bias of a sub-layer (views)."""
        return self.weight[:out_features, :in_features], (
            None if self.bias is None else self.bias[:out_features]
        )

    def forward(
        self, x: torch.Tensor, out_features: int | None = None, prepared: Prepared | None = None
    ) -> torch.Tensor:
        # x: (..., i) with i <= in_features -> (..., o)
        o = self.out_features if out_features is None else out_features
        i = x.shape[-1]
        weight, bias = self.slices(i, o) if prepared is None else prepared.get((self, i, o))
        return F.linear(x, weight, bias)


def export_linear(layer: nn.Linear, in_features: int, out_features: int) -> nn.Linear:
    """A plain ``nn.Linear`` holding a copy of the ``(out_features, in_features)`` slice."""
    new = nn.Linear(in_features, out_features, bias=layer.bias is not None)
    new.weight.data.copy_(layer.weight[:out_features, :in_features])
    if layer.bias is not None:
        new.bias.data.copy_(layer.bias[:out_features])
    return new.to(layer.weight.dtype)


class ElasticConv2d(nn.Conv2d):
    """A 2-D convolution of the largest size (no bias, "same" padding) with an elastic number of
    output channels and an elastic odd kernel size.

    Args:
        in_channels: the largest input channels.
        out_channels: the largest output channels (a depthwise layer's equal its inputs).
        kernel_sizes: the kernel sizes subnets may use; the largest is stored.
        stride: the stride.
        depthwise: one filter per channel (``groups`` = channels).
        kernel_transform: derive smaller kernels through learned transforms of the centre crop
            (OFA: a (k*k, k*k) matrix per step down, initialized to identity) instead of the
            plain crop.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (3,),
        stride: int = 1,
        depthwise: bool = False,
        kernel_transform: bool = False,
    ):
        sizes = sorted(set(int(k) for k in kernel_sizes))
        if not sizes or any(k < 1 or k % 2 == 0 for k in sizes):
            raise ConfigError(f"kernel sizes must be odd positive ints, got {list(kernel_sizes)}")
        if depthwise and in_channels != out_channels:
            raise ConfigError(
                f"a depthwise conv has in == out channels, got {in_channels} and {out_channels}"
            )
        k = sizes[-1]
        super().__init__(
            in_channels,
            out_channels,
            k,
            stride,
            k // 2,
            groups=in_channels if depthwise else 1,
            bias=False,
        )
        self.kernel_sizes = tuple(sizes)
        self.depthwise = depthwise
        self.transforms = nn.ParameterDict()
        if kernel_transform:
            for big, small in zip(sizes[::-1], sizes[-2::-1], strict=False):
                self.transforms[f"{big}to{small}"] = nn.Parameter(torch.eye(small * small))

    def active_weight(self, in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
        """The (out, in/groups, k, k) weight of a subnet: a view, or computed from views when
        kernel transforms are on and ``kernel_size`` is not the largest."""
        w = (
            self.weight[:out_channels]
            if self.depthwise
            else self.weight[:out_channels, :in_channels]
        )
        big = self.kernel_sizes[-1]
        if kernel_size == big:
            return w
        if not self.transforms:
            start = (big - kernel_size) // 2
            return w[:, :, start : start + kernel_size, start : start + kernel_size]
        for size in self.kernel_sizes[::-1][1:]:  # step down 7 -> 5 -> 3
            if size < kernel_size:
                break
            start = (w.shape[-1] - size) // 2
            crop = w[:, :, start : start + size, start : start + size]  # (o, i, s, s)
            matrix = self.transforms[f"{w.shape[-1]}to{size}"]
            w = F.linear(crop.reshape(*crop.shape[:2], size * size), matrix).reshape_as(crop)
        return w

    def slices(self, in_channels: int, out_channels: int, kernel_size: int) -> tuple[torch.Tensor]:
        """``(active_weight(...),)``: what a forward reads."""
        return (self.active_weight(in_channels, out_channels, kernel_size),)

    def forward(
        self,
        x: torch.Tensor,
        out_channels: int | None = None,
        kernel_size: int | None = None,
        prepared: Prepared | None = None,
    ) -> torch.Tensor:
        # x: (B, c, H, W) -> (B, o, H/stride, W/stride)
        c = x.shape[1]
        o = c if self.depthwise else (self.out_channels if out_channels is None else out_channels)
        k = self.kernel_sizes[-1] if kernel_size is None else kernel_size
        if prepared is not None:
            (w,) = prepared.get((self, c, o, k))
        else:
            w = self.active_weight(c, o, k)
            small = self.depthwise and k > 1 and x.shape[2] * x.shape[3] <= SMALL_MAP
            if small and torch.is_grad_enabled():
                # training on small maps: the library's depthwise backward is slow there
                return depthwise_matmul(x, w, self.stride[0])
        return F.conv2d(x, w, None, self.stride, k // 2, 1, c if self.depthwise else 1)


#: feature maps up to this many pixels use :func:`depthwise_matmul` for depthwise convolutions.
SMALL_MAP = 64


@functools.lru_cache(maxsize=64)
def _tap_index(height: int, width: int, kernel: int, stride: int) -> tuple[torch.Tensor, int, int]:
    """For each (output pixel, input pixel) pair, the kernel tap linking them (k*k: none)."""
    pad = kernel // 2
    out_h, out_w = (
        (height + 2 * pad - kernel) // stride + 1,
        (width + 2 * pad - kernel) // stride + 1,
    )
    oy, ox = torch.meshgrid(torch.arange(out_h), torch.arange(out_w), indexing="ij")
    iy, ix = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    dy = iy.reshape(1, -1) - (oy.reshape(-1, 1) * stride - pad)  # (HWo, HWi) tap row
    dx = ix.reshape(1, -1) - (ox.reshape(-1, 1) * stride - pad)  # (HWo, HWi) tap column
    inside = (dy >= 0) & (dy < kernel) & (dx >= 0) & (dx < kernel)
    return torch.where(inside, dy * kernel + dx, kernel * kernel), out_h, out_w


def depthwise_matmul(x: torch.Tensor, weight: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """A "same"-padded depthwise convolution as one batched matrix product per channel.

    On the small feature maps of CPU-sized supernets (8x8 and below) this is several times
    faster than the library convolution, whose backward pass for large kernels on tiny maps is
    slow; it equals ``F.conv2d(x, weight, None, stride, k // 2, groups=C)`` up to rounding.
    """
    # x: (B, C, H, W), weight: (C, 1, k, k) -> (B, C, Ho, Wo)
    B, C, H, W = x.shape
    k = weight.shape[-1]
    index, out_h, out_w = _tap_index(H, W, k, stride)
    taps = F.pad(weight.reshape(C, k * k), (0, 1))  # (C, k*k + 1), last tap is zero
    matrix = taps[:, index]  # (C, HWo, HWi)
    out = torch.bmm(x.reshape(B, C, H * W).transpose(0, 1), matrix.transpose(1, 2))  # (C, B, HWo)
    return out.transpose(0, 1).reshape(B, C, out_h, out_w)


def export_conv(
    conv: ElasticConv2d, in_channels: int, out_channels: int, kernel_size: int
) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` holding a copy of a subnet's weight."""
    channels = in_channels if conv.depthwise else out_channels
    new = nn.Conv2d(
        in_channels,
        channels,
        kernel_size,
        conv.stride,
        kernel_size // 2,
        groups=in_channels if conv.depthwise else 1,
        bias=False,
    )
    new.weight.data.copy_(conv.active_weight(in_channels, channels, kernel_size))
    return new.to(conv.weight.dtype)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the first ``c`` channels of the largest layer (``c`` from the input).

    Train mode normalizes with batch statistics and updates the sliced running statistics in
    place. Eval mode uses ``stats`` (a subnet's re-calibrated mean and variance) when given,
    else the sliced running statistics. A re-calibration pass (``collect`` given) normalizes
    with batch statistics and adds them to ``collect[self.key]``, writing nothing shared.
    """

    key: str = ""  # the layer's name in its supernet; set by the supernet

    def slices(
        self, channels: int, stats: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eval-mode ``(weight, bias, mean, var)`` of the first ``channels`` channels (``stats``
        replace the sliced running statistics when given)."""
        mean, var = (
            stats
            if stats is not None
            else (self.running_mean[:channels], self.running_var[:channels])
        )
        return self.weight[:channels], self.bias[:channels], mean, var

    def forward(
        self,
        x: torch.Tensor,
        stats: tuple[torch.Tensor, torch.Tensor] | None = None,
        collect: dict[str, list] | None = None,
        prepared: Prepared | None = None,
    ) -> torch.Tensor:
        # x: (B, c, H, W) -> same
        c = x.shape[1]
        if prepared is not None:  # eval mode without autograd
            weight, bias, mean, var = prepared.get((self, c), stats)
            return F.batch_norm(x, mean, var, weight, bias, False, 0.0, self.eps)
        weight, bias = self.weight[:c], self.bias[:c]
        if collect is not None:
            n = x.numel() // c
            acc = collect.setdefault(self.key, [0, 0.0, 0.0])
            acc[0] += n
            acc[1] = acc[1] + x.sum((0, 2, 3)).double()
            acc[2] = acc[2] + (x * x).sum((0, 2, 3)).double()
            return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)
        if self.training:
            return F.batch_norm(
                x,
                self.running_mean[:c],
                self.running_var[:c],
                weight,
                bias,
                True,
                self.momentum,
                self.eps,
            )
        weight, bias, mean, var = self.slices(c, stats)
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, self.eps)


def export_bn(
    bn: ElasticBatchNorm2d, channels: int, stats: tuple[torch.Tensor, torch.Tensor] | None
) -> nn.BatchNorm2d:
    """A plain ``nn.BatchNorm2d`` with the first ``channels`` channels (and ``stats`` when given)."""
    new = nn.BatchNorm2d(channels, eps=bn.eps, momentum=bn.momentum)
    mean, var = (
        stats if stats is not None else (bn.running_mean[:channels], bn.running_var[:channels])
    )
    new.weight.data.copy_(bn.weight[:channels])
    new.bias.data.copy_(bn.bias[:channels])
    new.running_mean.copy_(mean)
    new.running_var.copy_(var)
    return new.to(bn.weight.dtype)


class ElasticLayerNorm(nn.LayerNorm):
    """Layer norm over the first ``d`` features of the largest layer (``d`` from the input)."""

    def slices(self, features: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine weight and bias of the first ``features`` features (views)."""
        return self.weight[:features], self.bias[:features]

    def forward(self, x: torch.Tensor, prepared: Prepared | None = None) -> torch.Tensor:
        # x: (..., d) -> same
        d = x.shape[-1]
        weight, bias = self.slices(d) if prepared is None else prepared.get((self, d))
        return F.layer_norm(x, (d,), weight, bias, self.eps)


# ---- importance ordering ------------------------------------------------------------------
#: optimizer state by parameter (``torch.optim.Optimizer.state``): permuted along with them.
OptimizerState = Mapping[torch.Tensor, Mapping[str, Any]]


@torch.no_grad()
def permute_rows(
    tensor: torch.Tensor, order: torch.Tensor, dim: int = 0, state: OptimizerState | None = None
) -> None:
    """Reorders ``tensor`` along ``dim`` in place so position j holds old position order[j];
    its optimizer state tensors of the same shape (AdamW's ``exp_avg``, ``exp_avg_sq``) move
    the same way, so training continues as if nothing happened."""
    tensor.copy_(tensor.index_select(dim, order))
    for value in (state.get(tensor, {}) if state is not None else {}).values():
        if isinstance(value, torch.Tensor) and value.shape == tensor.shape:
            value.copy_(value.index_select(dim, order))


@torch.no_grad()
def permute_bn(
    bn: nn.BatchNorm2d, order: torch.Tensor, state: OptimizerState | None = None
) -> None:
    """Reorders a batch norm's channels (affine parameters with their optimizer state, and
    running statistics)."""
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        permute_rows(t, order, 0, state)


def importance_order(scores: torch.Tensor) -> torch.Tensor:
    """Indices sorting ``scores`` (one per channel) from most to least important (stable)."""
    return torch.sort(scores, descending=True, stable=True).indices
