"""Batch-norm re-calibration of one subnet, as Once-for-All does before evaluating it.

Running statistics accumulated while training many subnets at once fit none of them well.
:func:`recalibrate` runs the subnet over some training inputs, measures each BN layer's mean and
variance over all of them, and stores the result *per arch* inside the supernet. Eval-mode
forward passes under ``subnet(arch)`` and ``export(arch)`` then use that arch's statistics.

Thread safety by design: the measuring pass normalizes with batch statistics and writes only
into accumulators owned by the pass (held in the caller's context, not in the modules); the
shared running statistics are never touched; the finished statistics go into a per-arch,
lock-protected cache. Two threads can re-calibrate and evaluate different archs at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from nasviz.errors import ConfigError
from nasviz.space import Arch
from nasviz.supernet._base import BNStats, ForwardState, Supernet

__all__ = ["calibration_inputs", "recalibrate"]


def calibration_inputs(data: Any, samples: int = 2000) -> torch.Tensor:
    """Up to ``samples`` training inputs from a Dataset (its train split), a Split, an ``(X, y)``
    pair or a tensor of inputs."""
    if hasattr(data, "train") and hasattr(data, "val"):
        data = data.train
    if hasattr(data, "X"):
        data = data.X
    elif isinstance(data, tuple) and len(data) == 2:
        data = data[0]
    if not isinstance(data, torch.Tensor):
        raise ConfigError(
            f"calibration data must be a nasviz Dataset or Split, an (X, y) pair or a tensor; got {type(data).__name__}"
        )
    if samples < 1 or len(data) == 0:
        raise ConfigError(
            f"need at least one calibration input, got samples={samples} and {len(data)} inputs"
        )
    return data[:samples]


@torch.no_grad()
def recalibrate(
    net: Supernet,
    arch: Mapping[str, Any],
    data: Any = None,
    samples: int = 2000,
    batch_size: int = 500,
) -> BNStats:
    """Re-computes the BN statistics of subnet ``arch`` and stores them in ``net`` for that arch.

    Args:
        net: a supernet.
        arch: the subnet.
        data: training inputs (see :func:`calibration_inputs`); None uses
            ``net.calibration_inputs``.
        samples: inputs used at most (OFA uses about 2,000 images).
        batch_size: inputs per forward pass; each BN layer's statistics are exact over all
            inputs, and the layers below it see per-batch normalization as in training.

    Returns:
        BN layer name -> ``(mean, var)`` (empty for supernets without batch norm).
    """
    arch = net.space.validate(arch)
    if not net._has_bn:
        return {}
    if data is None:
        if net.calibration_inputs is None:
            raise ConfigError(
                "recalibrate needs data: pass training inputs or set net.calibration_inputs"
            )
        data = net.calibration_inputs
    inputs = calibration_inputs(data, samples)
    collect: dict[str, list] = {}
    with net._activate(ForwardState(net._plan(arch), collect)):
        for i in range(0, len(inputs), batch_size):
            net(inputs[i : i + batch_size])  # fills `collect`
    stats = {}
    dtype = next(net.parameters()).dtype
    for key, (n, total, squares) in collect.items():
        mean = total / n
        var = (squares / n - mean * mean).clamp_min(0.0)
        stats[key] = (mean.to(dtype), var.to(dtype))
    net._bn_stats.put(Arch(arch), MappingProxyType(dict(stats)))  # read-only when shared
    return stats
