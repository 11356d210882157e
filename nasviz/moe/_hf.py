"""Finding Hugging Face transformers MoE routers and reading their decisions.

Recording hooks the router's output and never touches the block's computation. Three layouts
are recognized (transformers 4.45 and later):

* transformers 5 top-k routers (``MixtralTopKRouter``, ``Qwen2MoeTopKRouter``,
  ``Qwen3MoeTopKRouter``, ``OlmoeTopKRouter`` and others of the same shape): input flattened
  hidden states (N, D), output ``(router_logits (N, E), top_k_weights (N, k), top_k_index
  (N, k))``.
* transformers 4.x sparse-MoE blocks of Mixtral, Qwen2-MoE, Qwen3-MoE and OLMoE, whose router
  is a plain ``nn.Linear`` named ``gate`` returning logits (N, E); the block then takes the
  float32 softmax, its top ``top_k`` and renormalizes them when ``norm_topk_prob`` is set
  (Mixtral always). The recorder repeats exactly those steps on the logits.
* Switch Transformers' ``SwitchTransformersTop1Router`` (4.x and 5): input (B, T, D), output
  ``(one-hot dispatch mask (B, T, E) after capacity, max prob (B, T, 1), logits (B, T, E))``;
  a token beyond its expert's capacity has an all-zero dispatch row and is recorded as dropped.

This module imports nothing from transformers; it recognizes routers by shape and class name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nasviz.moe._layer import Routing

__all__ = ["HFRouter", "find_hf_routers"]

#: transformers 4.x sparse-MoE blocks with a Linear ``gate`` and softmax top-k routing.
LINEAR_GATE_BLOCKS = frozenset(
    {
        "MixtralSparseMoeBlock",
        "Qwen2MoeSparseMoeBlock",
        "Qwen3MoeSparseMoeBlock",
        "OlmoeSparseMoeBlock",
    }
)


@dataclass(frozen=True)
class HFRouter:
    """A Hugging Face router found in a model.

    Attributes:
        name: module path of the sparse-MoE block (the router's parent).
        router: the router module (hooked).
        block: the sparse-MoE block.
        kind: ``"topk"`` (transformers 5 router), ``"gate"`` (transformers 4 Linear gate) or
            ``"switch"``.
        num_experts, top_k: router sizes.
        normalize: whether the kept top-k probabilities are renormalized (``"gate"`` kind).
    """

    name: str
    router: nn.Module
    block: nn.Module
    kind: str
    num_experts: int
    top_k: int
    normalize: bool = True

    @property
    def weight(self) -> torch.Tensor:
        """The router's weight matrix, (E, D)."""
        return self.router.classifier.weight if self.kind == "switch" else self.router.weight

    def routing(self, output: tuple | torch.Tensor) -> Routing:
        """The :class:`Routing` of one router forward from its output.

        The leading shape is ``(N,)`` for top-k and gate routers (their input is flattened);
        the recorder restores (B, T) from the model's input. ``probs`` is left None where it is
        the plain softmax of the logits: it is taken when the recording is read.
        """
        if self.kind == "switch":
            dispatch, top_prob, logits = output  # (B, T, E), (B, T, 1), (B, T, E)
            lead = tuple(logits.shape[:-1])
            logits = logits.reshape(-1, logits.shape[-1])  # (N, E)
            experts = logits.argmax(dim=-1, keepdim=True)  # (N, 1)
            kept = dispatch.reshape(-1, dispatch.shape[-1]).sum(dim=-1, keepdim=True) > 0  # (N, 1)
            gates = top_prob.reshape(-1, 1).float() * kept  # (N, 1)
            return Routing(logits, None, experts, gates, lead, kept)
        if self.kind == "gate":
            logits = output  # (N, E)
            probs = torch.softmax(logits.float(), dim=-1)  # (N, E), as the block computes it
            gates, experts = probs.topk(self.top_k, dim=-1)  # (N, k)
            if self.normalize:
                gates = gates / gates.sum(dim=-1, keepdim=True)
            return Routing(logits, probs, experts, gates, (logits.shape[0],))
        logits, weights, index = output  # (N, E), (N, k), (N, k)
        return Routing(logits, None, index, weights, (logits.shape[0],))


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


def _linear_gate(block: nn.Module) -> nn.Linear | None:
    """The Linear ``gate`` of a transformers 4.x softmax top-k block, else None."""
    gate = getattr(block, "gate", None)
    num_experts = getattr(block, "num_experts", None)
    if (
        type(block).__name__ in LINEAR_GATE_BLOCKS
        and isinstance(gate, nn.Linear)
        and isinstance(num_experts, int)
        and gate.out_features == num_experts
        and isinstance(getattr(block, "top_k", None), int)
    ):
        return gate
    return None


def find_hf_routers(model: nn.Module) -> Iterator[HFRouter]:
    """Yields every Hugging Face MoE router in ``model``, in module order."""
    modules = dict(model.named_modules())
    for name, module in modules.items():
        gate = _linear_gate(module)
        if gate is not None:
            normalize = bool(getattr(module, "norm_topk_prob", True))  # Mixtral: always
            yield HFRouter(
                name, gate, module, "gate", module.num_experts, int(module.top_k), normalize
            )
            continue
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
