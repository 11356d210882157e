"""Real speed: remove pruned channels for good and return a smaller dense model.

A root channel is removable when every parameter slice that *produces* it (weight rows, bias,
BatchNorm scale and shift) is zero after masking: the channel then emits zeros (for
activations with f(0) = 0: ReLU, GELU, SiLU, tanh, ...) and removing it, with its consumers'
input slices, leaves every kept output unchanged. Structured masks from
:func:`nasviz.prune.channels` are removable by construction; unstructured masks almost never
zero a whole channel, and :func:`shrink` says so instead of pretending to save anything.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasviz.errors import NasvizWarning
from nasviz.objectives import count_params
from nasviz.prune._attention import head_columns, linear_of, replace_heads
from nasviz.prune._channels import _graph, channel_groups, example_input_for
from nasviz.prune._masks import Masks, copy_model

__all__ = ["Savings", "savings", "shrink"]


def _example(model: nn.Module, masks: Masks, example_input: Any) -> Any:
    if example_input is None and masks.meta.get("input_shape"):
        shape = tuple(masks.meta["input_shape"])
        if masks.meta.get("input_dtype") == "torch.int64":
            return torch.zeros(shape, dtype=torch.long)
        return torch.randn(shape, generator=torch.Generator().manual_seed(0))
    return example_input_for(model, example_input)


def _masked_copy(model: nn.Module, masks: Masks) -> nn.Module:
    masks.check(model)
    new = copy_model(model, plain=True)
    params = dict(new.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].device, params[name].dtype))
    return new


def _plan(model: nn.Module, dg: Any) -> list[Callable[[], Any]]:
    """One call per removable channel set, each removing it from ``model`` in place."""
    params = dict(model.named_parameters())
    plan: list[Callable[[], Any]] = []
    for group in channel_groups(model, dg=dg):
        alive = torch.zeros(group.size, dtype=torch.bool)
        for s in group.slices:
            if not s.out:
                continue
            w = params[s.param].detach()
            moved = w.movedim(s.dim, 0)  # (channels along dim, ...)
            nonzero = (moved != 0).reshape(moved.shape[0], -1).any(dim=1)
            alive[s.root] |= nonzero[s.idx]  # a channel lives if any producer entry is nonzero
        dead = torch.nonzero(~alive).flatten().tolist()
        if len(dead) == group.size:  # a fully pruned group: keep one channel so shapes stay valid
            dead = dead[1:]
        if not dead:
            continue
        module = model.get_submodule(group.root)
        if group.kind == "heads":
            plan.append(functools.partial(_prune_heads, module, dead))
        elif group.kind == "mha-heads":  # swapped for a HeadAttention (never the root: untraceable)
            plan.append(functools.partial(replace_heads, model, group.root, dead))
        else:
            plan.append(functools.partial(_prune_group, dg, module, dead))
    return plan


def _prune_group(dg: Any, module: nn.Module, idxs: list[int]) -> None:
    """Removes output channels ``idxs`` of ``module`` and everything coupled to them; the
    group is resolved now, against the shapes earlier steps left."""
    fn = dg.get_pruner_of_module(module).prune_out_channels
    dg.get_pruning_group(module, fn, idxs).prune()


def _keep_linear(layer: nn.Linear, keep: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of ``layer`` with only rows (dim 0) or columns (dim 1) ``keep``."""
    bias = None if layer.bias is None else layer.bias.detach()
    if bias is not None and dim == 0:
        bias = bias[keep]
    return linear_of(layer.weight.detach().index_select(dim, keep), bias)


def _prune_heads(attn: nn.Module, dead: list[int]) -> None:
    """Removes heads ``dead`` of a nasviz-style attention module in place."""
    alive = [h for h in range(attn.heads) if h not in set(dead)]
    keep = head_columns(alive, attn.head_dim)
    attn.q, attn.k, attn.v = (_keep_linear(getattr(attn, p), keep, 0) for p in ("q", "k", "v"))
    attn.out = _keep_linear(attn.out, keep, 1)
    attn.heads = len(alive)


def shrink(
    model: nn.Module, masks: Masks, example_input: Any = None, check: bool = True
) -> nn.Module:
    """A smaller dense copy of ``model`` with the channels/neurons ``masks`` prune removed.

    The copy carries the masks baked in (pruned weights are zeros) and no parametrizations;
    ``model`` itself is never changed.

    Args:
        example_input: input for tracing; defaults to the one recorded by ``channels`` or one
            guessed from the first layer.
        check: compare outputs of the masked and the shrunk model on the example input and warn
            (NasvizWarning) when they differ (activations with f(0) != 0 after a removed channel).
    """
    new = _masked_copy(model, masks)
    example = _example(new, masks, example_input)
    with torch.no_grad():
        reference = new.eval()(example) if check else None
    _, dg = _graph(new, example)
    plan = _plan(new, dg)
    if not plan:
        warnings.warn(
            "shrink: these masks prune no whole channel (unstructured): the shrunk model is as large and "
            "as fast as the dense one. Unstructured sparsity saves nothing at dense inference; it saves "
            "memory only when stored sparse. Use prune.channels for real speed.",
            NasvizWarning,
            stacklevel=2,
        )
    for prune_step in plan:
        prune_step()
    new.train(model.training)
    if check and reference is not None:
        with torch.no_grad():
            out = new.eval()(example)
        new.train(model.training)
        if out.shape != reference.shape or not torch.allclose(out, reference, rtol=1e-4, atol=1e-5):
            warnings.warn(
                "shrink: the shrunk model's outputs differ from the masked model's; a removed channel fed "
                "an activation with f(0) != 0 or a layer that mixes channels",
                NasvizWarning,
                stacklevel=2,
            )
    return new


@dataclass(frozen=True)
class Savings:
    """What masks really save: dense parameters before, nonzero after masking, and dense
    parameters after :func:`shrink` (what dense inference actually runs)."""

    dense_params: int
    nonzero_params: int
    shrunk_params: int

    @property
    def dense_saving(self) -> float:
        """Fraction of parameters (and of dense inference memory) removed by shrinking."""
        return 1.0 - self.shrunk_params / self.dense_params

    @property
    def sparse_saving(self) -> float:
        """Fraction of weights zeroed (a saving only for sparse storage / kernels)."""
        return 1.0 - self.nonzero_params / self.dense_params

    def __str__(self) -> str:
        return (
            f"{self.dense_params:,} params; {self.sparse_saving:.1%} zeroed (saved only if stored sparse); "
            f"{self.dense_saving:.1%} removed by shrink (saved at dense inference)"
        )


def savings(model: nn.Module, masks: Masks, example_input: Any = None) -> Savings:
    """Honest accounting of ``masks`` on ``model``: see :class:`Savings`."""
    masked = _masked_copy(model, masks)
    nonzero = sum(int((p != 0).sum()) for p in masked.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NasvizWarning)
        shrunk = shrink(model, masks, example_input=example_input, check=False)
    return Savings(count_params(model), nonzero, count_params(shrunk))
