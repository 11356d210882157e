"""Views of a block's parts, and the weight slicing every structural change is made of.

A :class:`Projection` is a run of features of one ``nn.Linear`` or transformers ``Conv1D``
(GPT-2's layer with a transposed ``(in, out)`` weight): the outputs of a query projection, one
third of GPT-2's packed ``c_attn``, or the inputs of an output projection. Slicing functions
compute the new tensors first and return an *installer*, a function that only swaps them in,
so a caller can check and compute everything before it changes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "AttentionBlock",
    "ExpertsBlock",
    "FFNBlock",
    "Installer",
    "Projection",
    "in_features",
    "is_conv1d",
    "keep_inputs",
    "keep_outputs",
    "out_features",
    "replace_experts",
]

Installer = Callable[[], None]


def is_conv1d(module: nn.Module) -> bool:
    """A transformers ``Conv1D`` (GPT-2): a Linear with its weight stored ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "nx")


def out_features(module: nn.Module) -> int:
    return int(module.nf) if is_conv1d(module) else int(module.out_features)


def in_features(module: nn.Module) -> int:
    return int(module.nx) if is_conv1d(module) else int(module.in_features)


@dataclass(frozen=True)
class Projection:
    """Features ``offset .. offset + width - 1`` of layer ``module`` (at path ``name``).

    For a producing projection (q, k, v, FFN up / gate) these are output features; for a
    consuming one (attention output, FFN down) input features.
    """

    name: str
    module: nn.Module
    offset: int
    width: int

    @property
    def transposed(self) -> bool:
        """True for transformers ``Conv1D``, whose weight is ``(in, out)``."""
        return is_conv1d(self.module)

    def rows(self) -> torch.Tensor:
        """The weights producing these output features, ``(width, in)`` (a view)."""
        w = self.module.weight
        w = w.t() if self.transposed else w  # (out, in)
        return w[self.offset : self.offset + self.width]

    def columns(self) -> torch.Tensor:
        """The weights consuming these input features, ``(out, width)`` (a view)."""
        w = self.module.weight
        w = w.t() if self.transposed else w  # (out, in)
        return w[:, self.offset : self.offset + self.width]


@dataclass(frozen=True)
class AttentionBlock:
    """One layer's self-attention.

    Heads are numbered by query head; with grouped-query attention query head ``h`` reads
    key/value head ``h // group`` (``group = heads // kv_heads``, the layout transformers'
    ``repeat_kv`` assumes).
    """

    layer: int
    name: str
    module: nn.Module
    q: Projection
    k: Projection
    v: Projection
    o: Projection
    heads: int
    kv_heads: int
    head_dim: int

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.heads // self.kv_heads


@dataclass(frozen=True)
class FFNBlock:
    """One layer's dense feed-forward network: ``inputs`` produce the ``neurons`` hidden
    features (gate and up projections, or one up projection), ``output`` consumes them."""

    layer: int
    inputs: tuple[Projection, ...]
    output: Projection
    neurons: int


@dataclass(frozen=True)
class ExpertsBlock:
    """One layer's sparse-MoE block (transformers 5 layout).

    Attributes:
        name: the block's module path (what a RoutingRecorder calls the layer).
        router: module with ``weight`` (E, D), ``num_experts``, ``top_k``.
        experts: module with ``gate_up_proj`` (E, 2I, D) and ``down_proj`` (E, D, I).
        num_experts, top_k, hidden: E, experts per token, I.
        normalize: whether the kept top-k probabilities are renormalized.
    """

    layer: int
    name: str
    block: nn.Module
    router: nn.Module
    experts: nn.Module
    num_experts: int
    top_k: int
    hidden: int
    normalize: bool


def _parameter(old: nn.Parameter, value: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(value.detach().clone().contiguous(), requires_grad=old.requires_grad)


def _keep(module: nn.Module, keep: torch.Tensor, outputs: bool) -> Installer:
    """Installer leaving ``module`` (Linear or Conv1D) with only output (or input) features
    ``keep``; the bias follows the outputs."""
    keep = keep.to(module.weight.device)
    conv1d = is_conv1d(module)  # its weight is (in, out); a Linear's (out, in)
    dim = (1 if outputs else 0) if conv1d else (0 if outputs else 1)
    weight = module.weight.index_select(dim, keep)
    bias = module.bias.index_select(0, keep) if outputs and module.bias is not None else None
    size = (
        ("nf" if outputs else "nx")
        if is_conv1d(module)
        else ("out_features" if outputs else "in_features")
    )

    def install() -> None:
        module.weight = _parameter(module.weight, weight)
        if bias is not None:
            module.bias = _parameter(module.bias, bias)
        setattr(module, size, len(keep))

    return install


def keep_outputs(module: nn.Module, keep: torch.Tensor) -> Installer:
    """Installer leaving ``module`` (Linear or Conv1D) with only output features ``keep``."""
    return _keep(module, keep, outputs=True)


def keep_inputs(module: nn.Module, keep: torch.Tensor) -> Installer:
    """Installer leaving ``module`` (Linear or Conv1D) with only input features ``keep``."""
    return _keep(module, keep, outputs=False)


def replace_experts(
    block: ExpertsBlock, gate_up: torch.Tensor, down: torch.Tensor, router_weight: torch.Tensor
) -> Installer:
    """Installer giving ``block`` new expert tensors ``gate_up`` (E', 2I, D), ``down``
    (E', D, I) and router weight (E', D); every ``num_experts`` attribute becomes E' and top-k
    is capped at E'."""
    experts, router = block.experts, block.router
    n = int(gate_up.shape[0])

    def install() -> None:
        experts.gate_up_proj = _parameter(experts.gate_up_proj, gate_up)
        experts.down_proj = _parameter(experts.down_proj, down)
        router.weight = _parameter(router.weight, router_weight)
        for module in (experts, router, block.block):
            if isinstance(getattr(module, "num_experts", None), int):
                module.num_experts = n
            if isinstance(getattr(module, "top_k", None), int):
                module.top_k = min(module.top_k, n)

    return install
