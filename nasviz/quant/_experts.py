"""Mixed-precision experts (MC-MoE): bits per expert from routing statistics, under a budget.

An expert's *importance* is its activation frequency times its mean routing weight, which is
the sum of the gates of the assignments it processed divided by all processed assignments of
its layer (optionally counting only the tokens of one task). The allocation minimizes
``sum_e importance_e * error_e(bits_e)`` over experts, where ``error_e(b)`` is the squared
reconstruction error of the expert's weights quantized to ``b`` bits, subject to a memory
budget, as an integer program solved by ``scipy.optimize.milp`` (HiGHS): one binary variable
per (expert, bit-width), one bit-width per expert, total bits (or bytes) within the budget.

Works on nasviz :class:`~nasviz.moe.MoE` layers (experts ``<layer>.experts.<j>``) and on
Hugging Face MoE blocks, per-expert modules (transformers 4) or stacked expert parameters
(transformers 5: Mixtral, Qwen-MoE, OLMoE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from nasviz.errors import ConfigError, MoEError, check_real
from nasviz.quant._ptq import _check_model, quantize, symmetric_for
from nasviz.quant._qtensor import check_bits, fake_quantize, quantized_bytes
from nasviz.quant._targets import Target, find_targets

__all__ = ["allocate_expert_bits", "expert_importance", "quantize_experts"]


def _check_stats(model: nn.Module, stats: Any) -> list[tuple[str, int]]:
    """``(layer, experts)`` of every MoE layer, or a MoEError when ``stats`` do not come from
    ``model`` (other layers, expert counts or router weights)."""
    from nasviz.moe import RoutingStats, find_moe_layers, layer_fingerprint

    if not isinstance(stats, RoutingStats):
        raise MoEError(f"stats must be nasviz RoutingStats, got {type(stats).__name__}")
    layers = find_moe_layers(model)
    recorded = [(name, e) for name, e, _ in stats.recording.signature]
    current = [
        (name, int(hf.num_experts if hf is not None else module.num_experts))
        for name, module, hf in layers
    ]
    if recorded != current:
        raise MoEError(
            f"these routing stats come from another model: they cover layers {recorded} but the "
            f"model has {current}; record the model you quantize"
        )
    for (name, _, fingerprint), (_, module, hf) in zip(
        stats.recording.signature, layers, strict=True
    ):
        if fingerprint and fingerprint != layer_fingerprint(module, hf):
            raise MoEError(
                f"these routing stats come from another model: layer {name!r} has other router "
                "weights or experts than when it was recorded; record the model you quantize"
            )
    return current


def _expert_targets(targets: Mapping[str, Target], layer: str, experts: int) -> list[list[Target]]:
    """The weights of each expert of one MoE layer."""
    out: list[list[Target]] = [[] for _ in range(experts)]
    prefix = f"{layer}." if layer else ""
    for t in targets.values():
        if not t.name.startswith(prefix):
            continue
        if t.expert is not None:
            if t.expert < experts:
                out[t.expert].append(t)
            continue
        parts = t.name[len(prefix) :].split(".")
        for i in range(len(parts) - 1):
            if parts[i] == "experts" and parts[i + 1].isdigit() and int(parts[i + 1]) < experts:
                out[int(parts[i + 1])].append(t)
                break
    missing = [j for j, ts in enumerate(out) if not ts]
    if missing:
        raise MoEError(
            f"MoE layer {layer!r}: found no quantizable weights for expert(s) {missing}; expected "
            "modules '<layer>.experts.<j>' or stacked expert parameters"
        )
    return out


def expert_importance(
    model: nn.Module, stats: Any, *, label: str | None = None, value: Any = None
) -> pd.DataFrame:
    """One row per (layer, expert): ``layer``, ``expert``, ``count`` (processed assignments),
    ``frequency`` (share of the layer's), ``mean_gate``, ``importance`` (frequency x mean
    gate), ``weights`` (values in the expert's quantizable weights) and ``layers`` (their names).

    Args:
        model: the model the stats were recorded from.
        stats: :class:`~nasviz.moe.RoutingStats`.
        label, value: count only tokens of examples whose recorded ``label`` equals ``value``
            (per-task importance); both or neither.
    """
    layers = _check_stats(model, stats)
    if (label is None) != (value is None):
        raise MoEError("give both label= and value= (per-task importance), or neither")
    if label is not None and label not in stats.recording.labels:
        raise MoEError(f"no label {label!r}; recorded labels: {list(stats.recording.labels)}")
    targets = find_targets(model)
    rows = []
    for (name, experts), record in zip(layers, stats.recording.layers, strict=True):
        chosen = (record.experts >= 0) & ~record.dropped  # (n, k) processed assignments
        if label is not None:
            keep = np.asarray(stats.recording.labels[label])[record.example] == value
            chosen &= keep[:, None]
        flat, gates = record.experts[chosen], record.gates[chosen]
        count = np.bincount(flat, minlength=experts)[:experts]
        gate_sum = np.bincount(flat, weights=gates, minlength=experts)[:experts]
        total = max(int(count.sum()), 1)
        for j, ts in enumerate(_expert_targets(targets, name, experts)):
            rows.append(
                {
                    "layer": name,
                    "expert": j,
                    "count": int(count[j]),
                    "frequency": count[j] / total,
                    "mean_gate": gate_sum[j] / max(count[j], 1),
                    "importance": gate_sum[j] / total,
                    "weights": sum(t.numel for t in ts),
                    "layers": tuple(t.name for t in ts),
                }
            )
    return pd.DataFrame(rows)


def _errors_and_bytes(
    targets: Mapping[str, Target], names: Sequence[str], bits: Sequence[int], symmetric: bool | None
) -> tuple[np.ndarray, np.ndarray]:
    from nasviz.quant._joint import _weight

    errors, sizes = np.zeros(len(bits)), np.zeros(len(bits), dtype=np.int64)
    for name in names:
        t = targets[name]
        w = _weight(t).detach()
        channels = w.numel()
        for d in t.reduce:
            channels //= w.shape[d]
        for i, b in enumerate(bits):
            sym = symmetric_for(b, symmetric)
            errors[i] += float((fake_quantize(w, b, t.reduce, sym) - w).float().pow(2).sum())
            sizes[i] += quantized_bytes(w.numel(), channels, b, sym, w.element_size())
    return errors, sizes


def allocate_expert_bits(
    model: nn.Module,
    stats: Any,
    *,
    average_bits: float | None = None,
    budget_bytes: int | None = None,
    bits: Sequence[int] = (2, 3, 4, 8),
    label: str | None = None,
    value: Any = None,
    symmetric: bool | None = None,
) -> pd.DataFrame:
    """Bits per expert that minimize importance-weighted quantization error under a budget.

    Args:
        model: the MoE model (nasviz or Hugging Face) the stats were recorded from.
        stats: its :class:`~nasviz.moe.RoutingStats`.
        average_bits: budget as the mean bits per expert weight value (codes only), e.g. 3.0.
        budget_bytes: budget as the exact bytes of all expert weights (codes, scales and zero
            points, as :func:`nasviz.quant.count_bytes` counts them). Give exactly one.
        bits: the bit-widths an expert may get (2, 3, 4, 8; 16 and 32 too).
        label, value: per-task importance (see :func:`expert_importance`).
        symmetric: as in :func:`nasviz.quant.quantize`.

    Returns:
        :func:`expert_importance`'s rows plus ``bits``, ``bytes`` (of that expert at its bits)
        and ``error`` (its squared reconstruction error); ``frame.attrs`` holds ``budget``,
        ``used`` (both in the budget's unit: bits or bytes) and ``objective``.

    Raises:
        ConfigError: no budget or both, an unsupported bit-width, or a budget below what the
            smallest bit-width for every expert needs.
    """
    if (average_bits is None) == (budget_bytes is None):
        raise ConfigError("give exactly one budget: average_bits= or budget_bytes=")
    if isinstance(bits, str | bytes) or not isinstance(bits, Sequence) or not bits:
        raise ConfigError(f"bits must be a non-empty sequence of bit-widths, got {bits!r}")
    widths = sorted({check_bits(b, "bits") for b in bits})
    _check_model(model)
    table = expert_importance(model, stats, label=label, value=value)
    targets = find_targets(model)
    n, m = len(table), len(widths)
    cost = np.zeros((n, m))
    usage = np.zeros((n, m))
    byte_sizes = np.zeros((n, m), dtype=np.int64)
    for i, row in enumerate(table.itertuples()):
        errors, sizes = _errors_and_bytes(targets, row.layers, widths, symmetric)
        cost[i] = row.importance * errors
        byte_sizes[i] = sizes
        usage[i] = sizes if budget_bytes is not None else np.asarray(widths) * row.weights
    if average_bits is not None:
        avg = check_real("average_bits", average_bits)
        budget = avg * float(table["weights"].sum())
    else:
        budget = float(check_real("budget_bytes", budget_bytes))
    least = float(usage[:, 0].sum())
    if least > budget + 1e-9:
        unit = "bits" if budget_bytes is None else "bytes"
        raise ConfigError(
            f"the budget ({budget:.0f} {unit}) is below the {least:.0f} {unit} that "
            f"{widths[0]}-bit experts need; raise it or allow fewer bits"
        )
    scale = cost.max() if cost.max() > 0 else 1.0
    c = (cost / scale).ravel() - 1e-9 * usage.ravel() / max(usage.max(), 1.0)  # ties: more bits
    one_each = np.kron(np.eye(n), np.ones(m))
    result = milp(
        c,
        constraints=[
            LinearConstraint(one_each, 1, 1),
            LinearConstraint(usage.ravel()[None, :], -np.inf, budget),
        ],
        integrality=np.ones(n * m),
        bounds=Bounds(0, 1),
        options={"mip_rel_gap": 1e-9},
    )
    if result.x is None:
        raise ConfigError(f"the bit allocation found no solution: {result.message}")
    choice = np.round(result.x).reshape(n, m).argmax(axis=1)
    rows = np.arange(n)
    table["bits"] = [widths[k] for k in choice]
    table["bytes"] = byte_sizes[rows, choice]
    table["error"] = [
        cost[i, k] / row_imp if (row_imp := table["importance"].iat[i]) > 0 else np.nan
        for i, k in enumerate(choice)
    ]
    table.attrs.update(
        budget=budget,
        used=float(usage[rows, choice].sum()),
        objective=float(cost[rows, choice].sum()),
    )
    return table


def quantize_experts(
    model: nn.Module,
    allocation: pd.DataFrame | Mapping[tuple[str, int], int],
    *,
    symmetric: bool | None = None,
) -> nn.Module:
    """A copy of ``model`` with each expert's weights quantized to its allocated bits (weight
    only, simulated kernels); everything else stays at full precision.

    Args:
        allocation: :func:`allocate_expert_bits`' frame, or ``{(layer, expert): bits}``; also
            a frame with ``layer``, ``expert`` and ``bits`` columns (uniform baselines).
    """
    _check_model(model)
    if isinstance(allocation, pd.DataFrame):
        missing = {"layer", "expert", "bits"} - set(allocation.columns)
        if missing:
            raise ConfigError(f"the allocation frame lacks column(s) {sorted(missing)}")
        pairs = {(str(r.layer), int(r.expert)): int(r.bits) for r in allocation.itertuples()}
    elif isinstance(allocation, Mapping):
        pairs = {(str(k[0]), int(k[1])): v for k, v in allocation.items()}
    else:
        raise ConfigError(
            f"allocation must be a DataFrame or {{(layer, expert): bits}}, got {type(allocation).__name__}"
        )
    from nasviz.moe import find_moe_layers

    counts = {
        name: int(hf.num_experts if hf is not None else module.num_experts)
        for name, module, hf in find_moe_layers(model)
    }
    targets = find_targets(model)
    plan: dict[str, int] = {}
    for (layer, expert), b in pairs.items():
        if layer not in counts or not 0 <= expert < counts[layer]:
            raise MoEError(
                f"allocation names expert {expert} of layer {layer!r}, which the model does not "
                f"have; MoE layers: {counts}"
            )
        width = check_bits(b, f"bits of expert {expert} in {layer!r}")
        for t in _expert_targets(targets, layer, counts[layer])[expert]:
            plan[t.name] = width
    return quantize(model, plan, symmetric=symmetric)
