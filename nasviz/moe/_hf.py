"""Finding Hugging Face transformers MoE routers and reading their decisions.

transformers 5 gives its sparse MoE blocks a router submodule whose forward returns what we
need, so recording hooks the router's output and never touches the block's computation:

* top-k routers (``MixtralTopKRouter``, ``Qwen2MoeTopKRouter``, ``Qwen3MoeTopKRouter``,
  ``OlmoeTopKRouter`` and others of the same shape): input flattened hidden states (N, D),
  output ``(router_logits (N, E), top_k_weights (N, k), top_k_index (N, k))``; the router's
  softmax is taken in float32 and the weights are renormalized when ``norm_topk_prob`` is set.
  The (B, T) shape comes from a pre-hook on the parent sparse-MoE block.
* Switch Transformers' ``SwitchTransformersTop1Router``: input (B, T, D), output
  ``(one-hot dispatch mask (B, T, E) after capacity, max prob (B, T, 1), logits (B, T, E))``.

This module imports nothing from transformers; it recognizes routers by shape and class name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nasviz.moe._layer import Routing

__all__ = ["HFRouter", "find_hf_routers"]


@dataclass(frozen=True)
class HFRouter:
    """A Hugging Face router found in a model.

    Attributes:
        name: module path of the sparse-MoE block (the router's parent).
        router: the router module (hooked).
        block: the sparse-MoE block (pre-hooked for the token shape).
        kind: ``"topk"`` or ``"switch"``.
        num_experts, top_k: router sizes.
    """

    name: str
    router: nn.Module
    block: nn.Module
    kind: str
    num_experts: int
    top_k: int

    def routing(self, output: tuple, lead: tuple[int, ...] | None) -> Routing:
        """The :class:`Routing` of one router forward from its output.

        ``probs`` is left None: the recorder takes the float32 softmax of the logits when the
        recording is read, which keeps the hook cheap.

        Args:
            output: what the router's forward returned.
            lead: leading (B, T) shape of the block's input, when known.
        """
        if self.kind == "switch":
            dispatch, top_prob, logits = output  # (B, T, E), (B, T, 1), (B, T, E)
            lead = tuple(logits.shape[:-1])
            logits = logits.detach().reshape(-1, logits.shape[-1])  # (N, E)
            experts = logits.argmax(dim=-1, keepdim=True)  # (N, 1)
            kept = (
                dispatch.detach().reshape(-1, dispatch.shape[-1]).sum(dim=-1, keepdim=True) > 0
            )  # (N, 1)
            gates = top_prob.detach().reshape(-1, 1).float() * kept  # (N, 1)
            return Routing(
                logits, None, experts, gates, lead
            )  # probs: softmax(logits), taken later
        logits, weights, index = output  # (N, E), (N, k), (N, k)
        n = logits.shape[0]
        if lead is None or _prod(lead) != n:
            lead = (n,)
        return Routing(
            logits.detach(), None, index.detach(), weights.detach(), lead
        )  # probs taken later


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def _is_topk_router(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__.endswith("TopKRouter")
        and isinstance(weight, torch.Tensor)
        and weight.dim() == 2
        and isinstance(getattr(module, "top_k", None), int)
        and isinstance(getattr(module, "num_experts", None), int)
    )


def _is_switch_router(module: nn.Module) -> bool:
    return (
        type(module).__name__.endswith("Top1Router")
        and isinstance(getattr(module, "classifier", None), nn.Linear)
        and isinstance(getattr(module, "num_experts", None), int)
    )


def find_hf_routers(model: nn.Module) -> Iterator[HFRouter]:
    """Yields every Hugging Face MoE router in ``model``, in module order."""
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if _is_topk_router(module):
            kind, top_k = "topk", int(module.top_k)
        elif _is_switch_router(module):
            kind, top_k = "switch", 1
        else:
            continue
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        yield HFRouter(
            parent or name, module, modules[parent], kind, int(module.num_experts), top_k
        )
