"""Expert pruning and merging for Hugging Face MoE models (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE).

The experts of a transformers 5 sparse-MoE block are two fused tensors (``gate_up_proj``
(E, 2I, D), ``down_proj`` (E, D, I)) and a router weight (E, D), found through
:func:`nasviz.hf.adapter_for`. Both operations work on a deep copy and write the new expert
count into the copy's config, so ``save_pretrained`` / ``from_pretrained`` round-trip.

* Dropping: the kept experts' tensors and router rows are sliced. The router's softmax then runs
  over the kept experts only, exactly as if the dropped experts' logits were -inf before the
  top-k (with or without top-k renormalization).
* Merging (M-SMoE): each group's members are aligned to its dominant expert neuron by neuron
  (a neuron is its gate row, up row and down column) and averaged weighted by usage. A Hugging
  Face block has no slot -> expert map, so the router is adapted: each merged expert keeps its
  dominant expert's router row, and tokens that chose the dominant expert still choose it.

The config stores one expert count for all MoE layers, so every MoE layer must keep the same
number of experts (a MoEError says so otherwise).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from nasviz.errors import MoEError
from nasviz.hf import ExpertsBlock, find_adapter
from nasviz.hf._layers import replace_experts

__all__ = ["hf_drop", "hf_expert_layers", "hf_merge", "neuron_features"]


def hf_expert_layers(model: nn.Module) -> dict[str, ExpertsBlock]:
    """Block path -> :class:`~nasviz.hf.ExpertsBlock` of every sparse-MoE layer of a Hugging
    Face model of a supported family (empty for any other model)."""
    adapter = find_adapter(model)
    if adapter is None or adapter.family.moe is None:
        return {}
    blocks = (adapter.experts(i) for i in range(adapter.num_layers))
    return {b.name: b for b in blocks if b is not None}


def _one_count(counts: Mapping[str, int], model: nn.Module) -> int:
    if len(set(counts.values())) != 1:
        raise MoEError(
            f"{type(model).__name__}'s config has one expert count for all MoE layers, but this would "
            f"leave {dict(counts)}; keep the same number of experts in every MoE layer"
        )
    return next(iter(counts.values()))


def _rebuild(model: nn.Module, tensors: Mapping[str, tuple[torch.Tensor, ...]]) -> nn.Module:
    """A deep copy of ``model`` whose MoE layers get ``tensors[name] = (gate_up, down,
    router_weight)`` and whose config says the new expert count."""
    count = _one_count({n: int(t[0].shape[0]) for n, t in tensors.items()}, model)
    new = copy.deepcopy(model)
    adapter = find_adapter(new)
    config = adapter.rewrite_config(experts=count)
    blocks = hf_expert_layers(new)
    installers = [replace_experts(blocks[name], *t) for name, t in tensors.items()]
    with torch.no_grad():
        for install in installers:
            install()
    adapter.set_config(config)
    return new


def hf_drop(model: nn.Module, keep: Mapping[str, np.ndarray]) -> nn.Module:
    """A copy of ``model`` keeping experts ``keep[layer]`` (sorted slots) of every MoE layer."""
    blocks = hf_expert_layers(model)
    tensors = {}
    for name, block in blocks.items():
        slots = torch.as_tensor(np.sort(keep.get(name, np.arange(block.num_experts))))
        slots = slots.to(block.router.weight.device)
        tensors[name] = (
            block.experts.gate_up_proj.detach()[slots],
            block.experts.down_proj.detach()[slots],
            block.router.weight.detach()[slots],
        )
    return _rebuild(model, tensors)


def neuron_features(block: ExpertsBlock, e: int) -> torch.Tensor:
    """One row per hidden neuron of expert ``e``: its gate row, up row and down column,
    (I, 3D)."""
    gate_up = block.experts.gate_up_proj[e].detach()  # (2I, D)
    i = block.hidden
    return torch.cat([gate_up[:i], gate_up[i:], block.experts.down_proj[e].detach().t()], dim=1)


def hf_merge(
    model: nn.Module,
    plans: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    permutation,
) -> nn.Module:
    """A copy of ``model`` with merged experts.

    Args:
        plans: layer -> ``(dominant (G,), group_of (E,), usage (E,))``.
        permutation: ``permutation(dominant_features, member_features) -> (I,) index`` aligning
            a member's neurons to the dominant's.
    """
    blocks = hf_expert_layers(model)
    tensors = {}
    for name, (dominant, group_of, usage) in plans.items():
        block = blocks[name]
        i = block.hidden
        gate_up, down = block.experts.gate_up_proj.detach(), block.experts.down_proj.detach()
        merged_gu, merged_down = [], []
        for g, d in enumerate(dominant):
            members = np.flatnonzero(group_of == g)
            weights = usage[members] + 1.0  # +1: never-used members still count a little
            weights = weights / weights.sum()
            gu, dn = torch.zeros_like(gate_up[0]), torch.zeros_like(down[0])  # (2I, D), (D, I)
            target = neuron_features(block, int(d))
            for member, w in zip(members, weights, strict=True):
                if member == d:
                    perm = torch.arange(i, device=gu.device)
                else:
                    perm = permutation(target, neuron_features(block, int(member)))
                rows = torch.cat([perm, perm + i])  # gate rows, then up rows
                gu += float(w) * gate_up[int(member)][rows]
                dn += float(w) * down[int(member)][:, perm]
            merged_gu.append(gu)
            merged_down.append(dn)
        index = torch.as_tensor(np.asarray(dominant), device=gate_up.device)
        tensors[name] = (
            torch.stack(merged_gu),
            torch.stack(merged_down),
            block.router.weight.detach()[index],
        )
    return _rebuild(model, tensors)
