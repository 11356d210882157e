"""Sensitivity: the accuracy drop of quantizing one layer at a time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import torch
from torch import nn

from nasviz.objectives import evaluate_accuracy
from nasviz.quant._ptq import _check_model, _copy, _plain, symmetric_for
from nasviz.quant._qtensor import check_bits, fake_quantize
from nasviz.quant._targets import find_targets, select

__all__ = ["sensitivity"]


@torch.no_grad()
def sensitivity(
    model: nn.Module,
    data: Any,
    *,
    bits: int = 4,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    symmetric: bool | None = None,
    batch_size: int = 512,
) -> pd.DataFrame:
    """Accuracy with each layer alone quantized to ``bits`` (weight-only, simulated), the rest
    at full precision. ``model`` is not changed (a copy is measured).

    Args:
        model: a full-precision classifier (an exported subnet, any ``nn.Module``).
        data: what :func:`nasviz.accuracy` takes (a Dataset is measured on its val split).
        bits: the bit-width each layer is tried at (2, 3, 4, 8 or 16).
        include, exclude: layer names or glob patterns.
        symmetric: as in :func:`nasviz.quant.quantize`.
        batch_size: evaluation batch size.

    Returns:
        One row per layer in module order: ``layer``, ``block``, ``kind``, ``weights``, ``bits``,
        ``kernel`` ("simulated"), ``accuracy``, ``baseline`` (full precision) and ``drop``
        (baseline - accuracy, in points; larger means more sensitive).
    """
    _check_model(model)
    bits = check_bits(bits)
    chosen = select(find_targets(model), include, exclude)
    copy = _copy(model).eval()
    targets = find_targets(copy)
    baseline = evaluate_accuracy(copy, data, batch_size=batch_size)
    rows = []
    for name in chosen:
        t = targets[name]
        w = _plain(t.module, t.attr)  # a parameter's tensor: edited in place, then restored
        part = w if t.expert is None else w[t.expert]
        saved = part.clone()
        part.copy_(fake_quantize(saved, bits, t.reduce, symmetric_for(bits, symmetric)))
        try:
            acc = evaluate_accuracy(copy, data, batch_size=batch_size)
        finally:
            part.copy_(saved)
        rows.append(
            {
                "layer": name,
                "block": t.block,
                "kind": t.kind,
                "weights": part.numel(),
                "bits": bits,
                "kernel": "simulated",
                "accuracy": acc,
                "baseline": baseline,
                "drop": baseline - acc,
            }
        )
    columns = [
        "layer",
        "block",
        "kind",
        "weights",
        "bits",
        "kernel",
        "accuracy",
        "baseline",
        "drop",
    ]
    return pd.DataFrame(rows, columns=columns)
