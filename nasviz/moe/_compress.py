"""Expert compression from routing statistics: pruning (UNCURL-style) and merging (M-SMoE).

Every function returns a compressed deep copy and leaves the input model unchanged. They work
on nasviz :class:`~nasviz.moe.MoE` layers (standalone or inside any model, e.g. a
``MoEClassifier`` or an exported ``ElasticTransformer`` subnet) and on Hugging Face MoE models
(Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE; see :mod:`nasviz.moe._hf_compress`: the copy's config
says the new expert count, so it saves and loads with ``save_pretrained`` / ``from_pretrained``,
and every MoE layer keeps the same number of experts).

* :func:`drop_experts` — remove given experts; the router keeps only the rows of the rest, so
  its softmax renormalizes over what is kept.
* :func:`prune_experts` — keep the ``keep`` most used experts per layer (optionally counting only
  the tokens of one label value: task-specific pruning).
* :func:`merge_experts` — M-SMoE: the ``groups`` most used experts are dominant; every other
  expert joins the dominant one whose router logits it resembles most; members' hidden neurons
  are permuted to match their dominant's (``scipy.optimize.linear_sum_assignment``) and the
  group is averaged weighted by activation frequency. In nasviz layers the router is kept whole
  and several router slots point at one merged expert (``MoE.expert_map``), so routing is
  unchanged; in Hugging Face blocks each merged expert keeps its dominant expert's router row.

Stats must come from the model being compressed: every layer's fingerprint (router shape and
weight hash, expert modules) recorded with the stats must match the model's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasviz.errors import MoEError, check_int
from nasviz.hf import ExpertsBlock, supported_model_types
from nasviz.moe._hf_compress import hf_drop, hf_expert_layers, hf_merge
from nasviz.moe._layer import MoE
from nasviz.moe._recorder import find_moe_layers, layer_fingerprint
from nasviz.moe._stats import RoutingStats

__all__ = ["check_stats", "drop_experts", "merge_experts", "prune_experts"]


Layer = MoE | ExpertsBlock


def _moe_layers(model: nn.Module) -> dict[str, Layer]:
    """Name -> nasviz MoE layer, or (a Hugging Face MoE model) name -> its ExpertsBlock."""
    if not isinstance(model, nn.Module):
        raise MoEError(f"model must be a torch nn.Module, got {type(model).__name__}")
    layers: dict[str, Layer] = {
        name or type(m).__name__: m for name, m in model.named_modules() if isinstance(m, MoE)
    }
    if not layers:
        layers = hf_expert_layers(model)
    if not layers:
        raise MoEError(
            f"{type(model).__name__} has no MoE layers to compress: expert pruning and merging work on "
            "nasviz.moe.MoE layers and on Hugging Face MoE models (model types "
            f"{', '.join(t for t in supported_model_types() if 'moe' in t or t == 'mixtral')})"
        )
    return layers


def _is_hf(layers: Mapping[str, Layer]) -> bool:
    return isinstance(next(iter(layers.values())), ExpertsBlock)


def check_stats(model: nn.Module, stats: RoutingStats) -> dict[str, Layer]:
    """The model's MoE layers (nasviz MoE layers, or :class:`~nasviz.hf.ExpertsBlock` s of a
    Hugging Face model), or a MoEError when ``stats`` were recorded from another model (other
    layers or expert counts, or other fingerprints: different router weights, a pruned, merged
    or retrained copy). Recordings without fingerprints are checked by shape."""
    if not isinstance(stats, RoutingStats):
        raise MoEError(
            f"stats must be the RoutingStats recorded from this model (RoutingRecorder(model).stats()), "
            f"got {type(stats).__name__}"
        )
    layers = _moe_layers(model)
    found = [(name, m, hf) for name, m, hf in find_moe_layers(model) if name in layers]
    recorded = [(name, e) for name, e, _ in stats.recording.signature]
    current = [(name, hf.num_experts if hf else m.num_experts) for name, m, hf in found]
    if recorded != current:
        raise MoEError(
            f"these routing stats come from another model: they cover layers {recorded} "
            f"but the model has {current}; record the model you compress"
        )
    for (name, _, fingerprint), (_, module, hf) in zip(
        stats.recording.signature, found, strict=True
    ):
        now = layer_fingerprint(module, hf)
        if fingerprint and fingerprint != now:
            raise MoEError(
                f"these routing stats come from another model: layer {name!r} was recorded as "
                f"[{fingerprint}] but is [{now}] in this model (other router weights, or a pruned, "
                "merged or retrained copy); record the model you compress"
            )
    return layers


def _per_layer(
    value: int | Mapping[str, int], layers: Mapping[str, Layer], what: str
) -> dict[str, int]:
    if isinstance(value, Mapping):
        unknown = set(value) - set(layers)
        if unknown:
            raise MoEError(
                f"{what} names unknown layers {sorted(unknown)}; MoE layers: {list(layers)}"
            )
        out = {
            name: check_int(f"{what}[{name!r}]", value.get(name, m.num_experts), error=MoEError)
            for name, m in layers.items()
        }
    else:
        out = dict.fromkeys(layers, check_int(what, value, error=MoEError))
    for name, n in out.items():
        if not 1 <= n <= layers[name].num_experts:
            raise MoEError(
                f"{what}={n} for layer {name!r} is not allowed: it has {layers[name].num_experts} experts, so use 1..{layers[name].num_experts}"
            )
    return out


def _replace(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    if name == type(model).__name__ and isinstance(model, MoE):
        return new
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    return model


def _select(layer: MoE, slots: np.ndarray) -> MoE:
    """A new MoE with only router slots ``slots`` (their experts copied)."""
    slots = np.sort(slots)
    physical = slots if layer.expert_map is None else layer.expert_map.cpu().numpy()[slots]
    unique, inverse = np.unique(physical, return_inverse=True)
    new = MoE(
        layer.dim,
        layer.hidden,
        len(slots),
        min(layer.top_k, len(slots)),
        layer.temperature,
        layer.capacity_factor,
    )
    new.to(device=layer.router.weight.device, dtype=layer.router.weight.dtype)
    with torch.no_grad():
        new.router.weight.copy_(layer.router.weight[torch.as_tensor(slots)])
    new.experts = nn.ModuleList(copy.deepcopy(layer.experts[int(j)]) for j in unique)
    if len(unique) < len(slots):
        new.expert_map = torch.as_tensor(
            inverse, dtype=torch.long, device=layer.router.weight.device
        )
    return new


def drop_experts(model: nn.Module, drop: Mapping[str, Sequence[int]]) -> nn.Module:
    """A copy of ``model`` without the experts ``drop[layer]`` (router renormalized over the rest).

    A Hugging Face model's config has one expert count, so every MoE layer must keep the same
    number of experts."""
    layers = _moe_layers(model)
    if not isinstance(drop, Mapping):
        raise MoEError(f"drop must map MoE layer name -> experts to drop, got {drop!r}")
    plan = {}
    for name, experts in drop.items():
        if name not in layers:
            raise MoEError(f"unknown MoE layer {name!r}; MoE layers: {list(layers)}")
        E = layers[name].num_experts
        gone = {check_int(f"drop[{name!r}] entry", e, error=MoEError) for e in experts}
        if not gone <= set(range(E)):
            raise MoEError(
                f"layer {name!r} has experts 0..{E - 1}; cannot drop {sorted(gone - set(range(E)))}"
            )
        if len(gone) >= E:
            raise MoEError(f"cannot drop all {E} experts of layer {name!r}; at least one must stay")
        plan[name] = np.array([e for e in range(E) if e not in gone])
    if _is_hf(layers):
        return hf_drop(model, plan)
    new_model = copy.deepcopy(model)
    new_layers = _moe_layers(new_model)
    for name, slots in plan.items():
        new_model = _replace(new_model, name, _select(new_layers[name], slots))
    return new_model


def prune_experts(
    model: nn.Module,
    stats: RoutingStats,
    keep: int | Mapping[str, int],
    per_label: tuple[str, Any] | None = None,
) -> nn.Module:
    """A copy of ``model`` keeping the ``keep`` most used experts of every MoE layer.

    "Used" counts every time the router chose the expert (also when a capacity limit dropped
    the assignment); ties go to the higher mean router probability.

    Args:
        model: the model the stats were recorded from (left unchanged).
        stats: its routing statistics.
        keep: experts kept per layer (an int, or layer name -> int), ``1 <= keep <= E``.
        per_label: ``(label, value)``: rank experts by the tokens of that label only (task-specific
            pruning, e.g. ``("task", 2)``).
    """
    layers = check_stats(model, stats)
    keep_n = _per_layer(keep, layers, "keep")
    if per_label is not None and not (isinstance(per_label, tuple) and len(per_label) == 2):
        raise MoEError(
            f"per_label must be a (label, value) pair such as ('task', 2), got {per_label!r}"
        )
    drop = {}
    for i, (name, layer) in enumerate(layers.items()):
        if per_label is None:
            usage = stats.counts(i, include_dropped=True).astype(float)
        else:
            label, value = per_label
            table = stats.by_label(label, layer=i, normalize=False, include_dropped=True)
            if value not in table.index:
                raise MoEError(
                    f"label {label!r} has no value {value!r}; values: {list(table.index)}"
                )
            usage = table.loc[value].to_numpy(dtype=float)
        tiebreak = (
            stats.recording.layer(i).probs.mean(axis=0) if len(stats.recording.layer(i)) else 0.0
        )
        order = np.lexsort(
            (-np.asarray(tiebreak) * np.ones(layer.num_experts), -usage)
        )  # most used first
        drop[name] = sorted(int(e) for e in order[keep_n[name] :])
    return drop_experts(model, {k: v for k, v in drop.items() if v})


def _router_similarity(stats: RoutingStats, i: int, layer: Layer) -> np.ndarray:
    """Cosine similarity between experts' router-logit vectors over the recorded tokens, (E, E)."""
    logits = stats.recording.layer(i).logits
    logits = logits[np.isfinite(logits).all(axis=1)]
    columns = (
        logits.T if len(logits) else layer.router.weight.detach().cpu().double().numpy()
    )  # (E, n) or (E, D)
    columns = columns - columns.mean(axis=1, keepdims=True)
    unit = columns / np.maximum(np.linalg.norm(columns, axis=1, keepdims=True), 1e-12)
    return unit @ unit.T


def _neuron_features(expert: nn.Module) -> torch.Tensor:
    """One row per hidden neuron: its fc1 row, fc1 bias and fc2 column, (H, 2D + 1)."""
    return torch.cat(
        [expert.fc1.weight, expert.fc1.bias[:, None], expert.fc2.weight.t()], dim=1
    ).detach()


def _permutation(target: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """The order of ``member``'s neurons (rows) that best matches ``target``'s: a linear
    assignment maximizing the summed dot products, (H,)."""
    from scipy.optimize import linear_sum_assignment

    similarity = target @ member.t()  # (H, H)
    _, perm = linear_sum_assignment(similarity.double().cpu().numpy(), maximize=True)
    return torch.as_tensor(perm, device=member.device)


def _align(member: nn.Module, dominant: nn.Module) -> dict[str, torch.Tensor]:
    """Member's parameters with hidden neurons permuted to best match the dominant expert's."""
    perm = _permutation(_neuron_features(dominant), _neuron_features(member))
    return {
        "fc1.weight": member.fc1.weight[perm],
        "fc1.bias": member.fc1.bias[perm],
        "fc2.weight": member.fc2.weight[:, perm],
        "fc2.bias": member.fc2.bias,
    }


def _groups(
    stats: RoutingStats, i: int, layer: Layer, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """M-SMoE grouping of layer ``i``: ``(dominant (G,), group_of (E,), usage (E,))`` — the
    ``groups`` most used experts lead, every other joins the one whose router logits it
    resembles most."""
    usage = stats.counts(i, include_dropped=True).astype(float)
    dominant = np.argsort(-usage, kind="stable")[:groups]
    similarity = _router_similarity(stats, i, layer)
    group_of = np.empty(layer.num_experts, dtype=np.int64)
    group_of[dominant] = np.arange(groups)
    others = np.setdiff1d(np.arange(layer.num_experts), dominant)
    group_of[others] = np.argmax(similarity[np.ix_(others, dominant)], axis=1)
    return dominant, group_of, usage


def merge_experts(
    model: nn.Module, stats: RoutingStats, groups: int | Mapping[str, int]
) -> nn.Module:
    """M-SMoE merging: a copy of ``model`` with ``groups`` experts per layer.

    Args:
        model: the model the stats were recorded from (left unchanged).
        stats: its routing statistics (usage and router logits).
        groups: merged experts per layer (int or layer name -> int), ``1 <= groups <= E``.
    """
    layers = check_stats(model, stats)
    n_groups = _per_layer(groups, layers, "groups")
    if _is_hf(layers):
        plans = {
            name: _groups(stats, i, layer, n_groups[name])
            for i, (name, layer) in enumerate(layers.items())
        }
        return hf_merge(model, plans, _permutation)
    new_model = copy.deepcopy(model)
    new_layers = _moe_layers(new_model)
    for i, (name, layer) in enumerate(layers.items()):
        E, G = layer.num_experts, n_groups[name]
        if G == E or layer.expert_map is not None:
            if layer.expert_map is not None and G < E:
                raise MoEError(
                    f"layer {name!r} was merged already; merge the original model instead"
                )
            continue
        dominant, group_of, usage = _groups(stats, i, layer, G)
        merged = MoE(
            layer.dim, layer.hidden, E, layer.top_k, layer.temperature, layer.capacity_factor
        )
        merged.to(device=layer.router.weight.device, dtype=layer.router.weight.dtype)
        merged.experts = nn.ModuleList(copy.deepcopy(layer.experts[int(d)]) for d in dominant)
        with torch.no_grad():
            merged.router.weight.copy_(layer.router.weight)
            for g, d in enumerate(dominant):
                members = np.flatnonzero(group_of == g)
                weights = usage[members] + 1.0  # +1: never-used members still count a little
                weights = weights / weights.sum()
                total = {
                    key: torch.zeros_like(p) for key, p in merged.experts[g].named_parameters()
                }
                for member, w in zip(members, weights, strict=True):
                    params = (
                        dict(layer.experts[int(member)].named_parameters())
                        if member == d
                        else _align(layer.experts[int(member)], layer.experts[int(d)])
                    )
                    for key in total:
                        total[key] += float(w) * params[key]
                for key, p in merged.experts[g].named_parameters():
                    p.copy_(total[key])
        merged.expert_map = torch.as_tensor(group_of, device=layer.router.weight.device)
        new_model = _replace(new_model, name, merged)
        new_layers[name] = merged
    return new_model
