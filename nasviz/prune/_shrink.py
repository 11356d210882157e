"""Real speed: remove pruned channels for good and return a smaller dense model.

A root channel is removable when every parameter slice that *produces* it (weight rows, bias,
BatchNorm scale and shift) is zero after masking: the channel then emits zeros (for
activations with f(0) = 0: ReLU, GELU, SiLU, tanh, ...) and removing it, with its consumers'
input slices, leaves every kept output unchanged. Structured masks from
:func:`nasviz.prune.channels` are removable by construction; unstructured masks almost never
zero a whole channel, and :func:`shrink` says so instead of pretending to save anything.

Checked by default: the shrunk model's outputs (every tensor of a tensor, tuple, dict or
Hugging Face ``ModelOutput``; key/value caches aside) are compared with the masked model's on
the example input, and a difference is never silent. Hugging Face models lose whole key/value
heads (:mod:`nasviz.prune._hf`) and their config is rewritten to the new sizes where it can
express them (one size for all layers); where it cannot, shrink says so, since
``from_pretrained`` would then refuse the saved model.
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
from nasviz.hf import find_adapter
from nasviz.objectives import _forward_errors, count_params
from nasviz.prune._attention import head_columns, linear_of, replace_heads
from nasviz.prune._channels import ChannelGroup, _graph, channel_groups
from nasviz.prune._hf import StructurePlan, prune_structure, sync_config
from nasviz.prune._inputs import example_input_for, output_tensors
from nasviz.prune._masks import Masks, copy_model

__all__ = ["Savings", "ShrinkReport", "savings", "shrink", "shrink_report"]


def _example(model: nn.Module, masks: Masks, example_input: Any) -> Any:
    if example_input is None and masks.meta.get("input_shape"):
        example_input = tuple(masks.meta["input_shape"])  # token models get ids of that shape
    return example_input_for(model, example_input)


def _difference(reference: Any, out: Any) -> str | None:
    """Why two outputs differ (None when every tensor matches in shape and, within float
    tolerance relative to its scale, in value)."""
    a, b = output_tensors(reference), output_tensors(out)
    if len(a) != len(b):
        return f"the outputs hold {len(b)} tensors instead of {len(a)}"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x.shape != y.shape:
            return f"output tensor {i} has shape {tuple(y.shape)} instead of {tuple(x.shape)}"
        if x.is_floating_point():
            scale = float(x.abs().max()) if x.numel() else 0.0
            if not torch.allclose(y, x, rtol=1e-4, atol=1e-5 * max(1.0, scale)):
                return f"output tensor {i} differs by up to {float((y - x).abs().max()):.3g}"
        elif not torch.equal(x, y):
            return f"output tensor {i} differs"
    return None


def _forward(model: nn.Module, example: Any) -> Any:
    with torch.no_grad(), _forward_errors(tuple(getattr(example, "shape", ()))):
        return model.eval()(example)


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
        elif group.kind in ("hf-heads", "hf-neurons"):  # in place; the config follows later
            plan.append(functools.partial(_prune_hf, model, group, dead))
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


def _prune_hf(model: nn.Module, group: ChannelGroup, dead: list[int]) -> None:
    """Removes channels ``dead`` of a Hugging Face group in place: key/value heads (with their
    query heads) of an attention, or FFN neurons; the config is rewritten afterwards
    (:func:`sync_config`)."""
    adapter = find_adapter(model)
    for i in range(adapter.num_layers):
        if group.kind == "hf-heads" and adapter.attention(i).name == group.root:
            a = adapter.attention(i)
            kept = [h for h in range(a.heads) if h // a.group not in set(dead)]
            plan = StructurePlan(heads={i: kept})
            break
        ffn = adapter.ffn(i)
        if group.kind == "hf-neurons" and ffn is not None and ffn.output.name == group.root:
            plan = StructurePlan(neurons={i: [n for n in range(ffn.neurons) if n not in set(dead)]})
            break
    prune_structure(model, plan, in_memory=True)


@dataclass(frozen=True)
class ShrinkReport:
    """What :func:`shrink_report` found besides the shrunk model.

    Attributes:
        removed_nothing: the masks prune no whole channel (unstructured masks).
        mismatch: why the shrunk model's outputs differ from the masked model's (None: they
            match, or the check was off).
        config: why a Hugging Face model's config could not be rewritten to its new sizes
            (None: it was, or it is not a Hugging Face model).
    """

    removed_nothing: bool
    mismatch: str | None
    config: str | None

    def warnings(self) -> list[str]:
        """The messages :func:`shrink` warns with."""
        out = []
        if self.removed_nothing:
            out.append(
                "shrink: these masks prune no whole channel (unstructured): the shrunk model is as large "
                "and as fast as the dense one. Unstructured sparsity saves nothing at dense inference; it "
                "saves memory only when stored sparse. Use prune.channels for real speed."
            )
        if self.mismatch:
            out.append(
                f"shrink: the shrunk model's outputs differ from the masked model's ({self.mismatch}); a "
                "removed channel fed an activation with f(0) != 0 or a layer that mixes channels"
            )
        if self.config:
            out.append(
                f"shrink: the shrunk model runs, but {self.config}; save_pretrained then from_pretrained "
                "would refuse it (prune with prune.Importance(...).plan(), which keeps one size per "
                "layer, for a model you can save)"
            )
        return out


def shrink_report(
    model: nn.Module, masks: Masks, example_input: Any = None, *, check: bool = True
) -> tuple[nn.Module, ShrinkReport]:
    """:func:`shrink`, returning the shrunk model and a :class:`ShrinkReport` instead of
    warning (for callers that decide themselves, such as sweeps)."""
    new = _masked_copy(model, masks)
    example = _example(new, masks, example_input)
    reference = _forward(new, example) if check else None
    hf = find_adapter(new) is not None
    dg = None if hf else _graph(new, example)[1]  # Hugging Face groups come from the adapter
    plan = _plan(new, dg)
    for prune_step in plan:
        prune_step()
    config = sync_config(new) if hf else None
    mismatch = _difference(reference, _forward(new, example)) if check else None
    new.train(model.training)
    return new, ShrinkReport(not plan, mismatch, config)


def shrink(
    model: nn.Module, masks: Masks, example_input: Any = None, check: bool = True
) -> nn.Module:
    """A smaller dense copy of ``model`` with the channels/neurons ``masks`` prune removed.

    The copy carries the masks baked in (pruned weights are zeros) and no parametrizations;
    ``model`` itself is never changed.

    Args:
        example_input: input for tracing (a tensor, or a shape with batch); defaults to the one
            recorded by ``channels`` or one guessed from the model.
        check: compare every output tensor of the masked and the shrunk model on the example
            input and warn (NasvizWarning) when they differ (activations with f(0) != 0 after a
            removed channel). Leave it on: without it a difference goes unnoticed.

    Warns (NasvizWarning) also when the masks remove nothing, and when a Hugging Face model's
    config cannot express its new sizes.

    Raises:
        ShapeError: the model fails on the example input (the message names its shape).
    """
    new, report = shrink_report(model, masks, example_input, check=check)
    for message in report.warnings():
        warnings.warn(message, NasvizWarning, stacklevel=2)
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
    shrunk, _ = shrink_report(model, masks, example_input, check=False)  # counted, never run
    return Savings(count_params(model), nonzero, count_params(shrunk))
