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

from nasviz.data._batch import describe, split_batch
from nasviz.data._batches import as_batches
from nasviz.errors import ConfigError, check_int
from nasviz.space import Arch
from nasviz.supernet._base import BNStats, ForwardState, Supernet

__all__ = ["calibration_inputs", "recalibrate"]


def calibration_inputs(data: Any, samples: int = 2000) -> torch.Tensor:
    """Up to ``samples`` training inputs, in order, as one CPU tensor: from a tensor of inputs,
    or from data in any form :func:`nasviz.data.as_batches` takes (a Dataset: its train split;
    a stream is read only as far as needed)."""
    check_int("samples", samples, 1)
    if isinstance(data, torch.Tensor):
        if len(data) == 0:
            raise ConfigError("need at least one calibration input, got an empty tensor")
        return data[:samples]
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return calibration_inputs(data[0], samples)  # (X, y): no need to batch
    batches = as_batches(data, shuffle=False, what="calibration data")
    taken, count = [], 0
    for batch in batches:
        inputs = split_batch(batch)[0]
        if not isinstance(inputs, torch.Tensor):
            raise ConfigError(
                f"calibration needs tensor inputs; the batches hold {describe(inputs)}"
            )
        taken.append(inputs[: samples - count].cpu())
        count += len(taken[-1])
        if count >= samples:
            break
    if count == 0:
        raise ConfigError("need at least one calibration input; the data yields none")
    return torch.cat(taken)


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
        data: training inputs (a tensor, or data in any form: see
            :func:`calibration_inputs`); None uses ``net.calibration_inputs``.
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
    device = next(net.parameters()).device
    collect: dict[str, list] = {}
    with net._activate(ForwardState(net._plan(arch), collect)):
        for i in range(0, len(inputs), batch_size):
            net(inputs[i : i + batch_size].to(device))  # fills `collect`
    stats = {}
    dtype = next(net.parameters()).dtype
    for key, (n, total, squares) in collect.items():
        mean = total / n
        var = (squares / n - mean * mean).clamp_min(0.0)
        stats[key] = (mean.to(dtype), var.to(dtype))
    net._bn_stats.put(Arch(arch), MappingProxyType(dict(stats)))  # read-only when shared
    return stats
