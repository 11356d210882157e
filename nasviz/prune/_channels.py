"""Structured pruning: whole output channels / neurons, coupled layers pruned together.

Which channels must go together (Linear -> Linear, Conv -> BN -> Conv, the residual stream of
inverted-residual blocks, a depthwise conv and its expand conv, a global pool + flatten feeding
a classifier) comes from Torch-Pruning's dependency graph, traced on an example input: one
*group* per set of coupled channels, each group member a (parameter, dim, index) slice with the
root channel it belongs to. nasviz only reads the graph here; it never prunes the model.

Groups are left alone (never pruned) when they reach the model's output (the classifier's
classes), or touch a layer whose output would change if channels disappeared (LayerNorm,
GroupNorm, grouped but not depthwise convs, modules Torch-Pruning does not know). Attention is
pruned by whole heads: in modules of nasviz's shape (Linear ``q``/``k``/``v``/``out``,
``heads``, ``head_dim``) the q/k/v rows and ``out`` columns of a head go together, and in torch's
``nn.MultiheadAttention`` its rows of the packed ``in_proj`` and its ``out_proj`` columns (see
:mod:`nasviz.prune._attention`; configurations it cannot shrink are skipped with a warning).
Hugging Face models (:mod:`nasviz.hf`) are not traced: their groups come from their adapter
and are what a config can follow, FFN neurons and, per layer, the attention as one group of its
key/value heads (a key/value head goes with all its query heads: q, k, v rows and output
columns, so grouped-query layouts stay valid; OLMoE, whose heads cannot be removed, keeps its
attention whole).

Example inputs (:mod:`nasviz.prune._inputs`): a token model gets integer token ids of the shape
asked for; a float tensor given for one is a ConfigError.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasviz._compat import renamed_arguments
from nasviz.errors import ConfigError, MaskError, NasvizWarning
from nasviz.hf import AttentionBlock, FFNBlock, find_adapter, is_conv1d
from nasviz.prune._attention import mha_modules, unsupported_mha
from nasviz.prune._inputs import example_input_for, output_tensors
from nasviz.prune._magnitude import lowest_k
from nasviz.prune._masks import (
    PRUNABLE_TYPES,
    Masks,
    check_sparsity,
    copy_model,
    named_weights,
    prunable,
)

__all__ = [
    "ChannelGroup",
    "Slice",
    "attention_modules",
    "channel_groups",
    "channels",
    "example_input_for",
    "layer_weights",
    "output_tensors",
]

_NORM_OK = (nn.modules.batchnorm._BatchNorm,)
_BLOCKING = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.MultiheadAttention,
    nn.Embedding,
    nn.LSTM,
    nn.PReLU,
)


@dataclass(frozen=True)
class Slice:
    """One member of a group: entries ``idx`` along ``dim`` of ``param`` belong to root
    channels ``root`` (same length as ``idx``). ``out`` is True for the producing side."""

    param: str
    dim: int
    idx: torch.Tensor
    root: torch.Tensor
    out: bool


@dataclass(frozen=True)
class ChannelGroup:
    """Coupled channels that can only be removed together: ``size`` root channels of module
    ``root`` and every parameter slice that belongs to them."""

    root: str
    size: int
    slices: tuple[Slice, ...]
    kind: str = "channels"


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Multi-head attention modules nasviz prunes by whole heads: any module with Linear
    ``q``, ``k``, ``v``, ``out`` and int ``heads`` / ``head_dim`` (nasviz's StaticAttention)."""
    found = {}
    for name, m in model.named_modules():
        if (
            all(isinstance(getattr(m, a, None), nn.Linear) for a in ("q", "k", "v", "out"))
            and isinstance(getattr(m, "heads", None), int)
            and isinstance(getattr(m, "head_dim", None), int)
        ):
            found[name] = m
    return found


def _head_group(name: str, attn: nn.Module) -> ChannelGroup:
    width = attn.heads * attn.head_dim
    idx = torch.arange(width)
    root = idx // attn.head_dim  # (width,) head of every row / column
    pre = f"{name}." if name else ""
    slices = [
        Slice(f"{pre}{p}.{attr}", 0, idx, root, p == "v")
        for p in ("q", "k", "v")
        for attr in ("weight", "bias")
        if getattr(getattr(attn, p), attr) is not None
    ]
    slices.append(Slice(f"{pre}out.weight", 1, idx, root, True))
    return ChannelGroup(name, attn.heads, tuple(slices), kind="heads")


def _mha_group(name: str, mha: nn.MultiheadAttention) -> ChannelGroup:
    """Heads of a packed ``nn.MultiheadAttention``: q/k/v rows of ``in_proj_*`` and the
    ``out_proj`` columns of a head go together (see :mod:`nasviz.prune._attention`)."""
    e = mha.embed_dim
    idx = torch.arange(e)
    root = idx // mha.head_dim  # (E,) head of every row / column
    pre = f"{name}." if name else ""
    slices = [
        Slice(f"{pre}{param}", 0, idx + part * e, root, part == 2)
        for part in range(3)  # q, k, v blocks; v produces the head's output
        for param in ("in_proj_weight", "in_proj_bias")
        if getattr(mha, param) is not None
    ]
    slices.append(Slice(f"{pre}out_proj.weight", 1, idx, root, True))
    return ChannelGroup(name, mha.num_heads, tuple(slices), kind="mha-heads")


def _hf_head_group(a: AttentionBlock) -> ChannelGroup:
    """The key/value head groups of one Hugging Face attention: root channel g is key/value
    head g with its query heads (see :mod:`nasviz.prune._hf` for the grouped-query rule)."""
    d = a.head_dim
    q_idx, kv_idx = torch.arange(a.heads * d), torch.arange(a.kv_heads * d)
    q_root, kv_root = q_idx // d // a.group, kv_idx // d  # key/value head of every row
    slices = []
    for proj, idx, root, out in (
        (a.q, q_idx, q_root, False),
        (a.k, kv_idx, kv_root, False),
        (a.v, kv_idx, kv_root, True),  # v (and the output columns) carry the heads' output
    ):
        slices.append(
            Slice(f"{proj.name}.weight", int(proj.transposed), proj.offset + idx, root, out)
        )
        if proj.module.bias is not None:
            slices.append(Slice(f"{proj.name}.bias", 0, proj.offset + idx, root, out))
    slices.append(Slice(f"{a.o.name}.weight", int(not a.o.transposed), q_idx, q_root, True))
    return ChannelGroup(a.name, a.kv_heads, tuple(slices), kind="hf-heads")


def _hf_ffn_group(f: FFNBlock) -> ChannelGroup:
    """The hidden neurons of one Hugging Face FFN: neuron n is row n of every input projection
    (gate, up) and column n of the output projection; all of them carry it."""
    idx = torch.arange(f.neurons)
    slices = []
    for p in f.inputs:
        slices.append(Slice(f"{p.name}.weight", int(p.transposed), p.offset + idx, idx, True))
        if p.module.bias is not None:
            slices.append(Slice(f"{p.name}.bias", 0, p.offset + idx, idx, True))
    slices.append(Slice(f"{f.output.name}.weight", int(not f.output.transposed), idx, idx, True))
    return ChannelGroup(f.output.name, f.neurons, tuple(slices), kind="hf-neurons")


def hf_groups(model: nn.Module) -> list[ChannelGroup] | None:
    """A Hugging Face model's groups, read from its adapter (no tracing): every layer's
    key/value head groups and FFN neurons, what its config can follow; None for other models."""
    adapter = find_adapter(model)
    if adapter is None:
        return None
    groups = []
    for i in range(adapter.num_layers):
        if not adapter.family.heads_unprunable:
            groups.append(_hf_head_group(adapter.attention(i)))
        ffn = adapter.ffn(i)
        if ffn is not None:
            groups.append(_hf_ffn_group(ffn))
    return groups


def layer_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights structured pruning masks: :func:`~nasviz.prune.prunable` (Linear and Conv
    weights), and for a Hugging Face model also its GPT-2 style ``Conv1D`` weights (a model with
    only those, such as GPT-2 with its tied output layer, is fine)."""
    if find_adapter(model) is None:
        return prunable(model)
    return {
        name: t.detach()
        for name, mod, attr, t in named_weights(model)
        if attr == "weight" and (isinstance(mod, PRUNABLE_TYPES) or is_conv1d(mod))
    }


def _param_dims(module: nn.Module, out: bool) -> list[tuple[str, int]] | None:
    """(parameter, dim) pairs a channel slice touches; None when the module blocks pruning."""
    if isinstance(module, nn.Linear):
        return [("weight", 0), ("bias", 0)] if out else [("weight", 1)]
    if isinstance(module, nn.modules.conv._ConvNd):
        depthwise = module.groups == module.in_channels == module.out_channels
        if module.groups > 1 and not depthwise:
            return None
        if module.transposed:
            return [("weight", 1), ("bias", 0)] if out else [("weight", 0)]
        return [("weight", 0), ("bias", 0)] if out or depthwise else [("weight", 1)]
    if isinstance(module, _NORM_OK):
        return [("weight", 0), ("bias", 0)]
    if isinstance(module, _BLOCKING):
        return None
    if isinstance(module, nn.Module) and any(True for _ in module.parameters(recurse=False)):
        return None  # a module with weights Torch-Pruning's graph cannot see inside
    return []  # parameter-free ops (activations, pooling, flatten, add, ...)


def _graph(model: nn.Module, example_input: Any):
    try:
        import torch_pruning as tp
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError(
            "structured pruning needs Torch-Pruning: pip install torch-pruning"
        ) from exc
    try:
        return tp, tp.DependencyGraph().build_dependency(
            model,
            example_inputs=example_input,
            output_transform=lambda out: [t for t in output_tensors(out) if t.grad_fn is not None],
            verbose=False,
        )
    except Exception as exc:
        raise ConfigError(
            f"tracing {type(model).__name__} on an input of shape {tuple(getattr(example_input, 'shape', ()))} "
            f"failed ({type(exc).__name__}: {exc}); pass example_input= that the model accepts"
        ) from exc


def channel_groups(
    model: nn.Module, example_input: Any = None, dg: Any = None
) -> list[ChannelGroup]:
    """Every prunable group of coupled channels in ``model`` (see the module docstring).

    Args:
        model: traced, not changed (it must be free of parametrizations: see :func:`remove`).
        example_input: see :func:`example_input_for`.
        dg: an already built Torch-Pruning DependencyGraph of ``model`` to reuse.
    """
    hf = hf_groups(model)
    if hf is not None:
        return hf
    if dg is None:
        tp, dg = _graph(model, example_input_for(model, example_input))
    else:
        import torch_pruning as tp
    names = {m: n for n, m in model.named_modules()}
    attention = attention_modules(model)
    head_layers = {getattr(a, p) for a in attention.values() for p in ("q", "k", "v", "out")}
    groups = []
    for group in dg.get_all_groups(root_module_types=(nn.Linear, nn.modules.conv._ConvNd)):
        slices, ok = [], True
        for item in group:
            module, handler = item.dep.target.module, item.dep.handler
            out = dg.is_out_channel_pruning_fn(handler)
            node = dg.module2node.get(module)
            terminal = out and node is not None and not node.outputs  # its output is the model's
            heads = module in head_layers and (
                out != (module in {a.out for a in attention.values()})
            )
            if isinstance(module, tp.ops._OutputOp | nn.Parameter) or terminal or heads:
                ok = False  # reaches the output, or an unwrapped parameter
                break
            dims = _param_dims(module, out)
            if dims is None:
                ok = False
                break
            if module not in names:
                continue
            idx = torch.as_tensor(list(item.idxs), dtype=torch.long)
            root = torch.as_tensor(list(item.root_idxs), dtype=torch.long)
            for attr, dim in dims:
                if getattr(module, attr, None) is None:
                    continue
                name = f"{names[module]}.{attr}" if names[module] else attr
                slices.append(Slice(name, dim, idx, root, out))
        if ok and slices:
            root_module = group[0].dep.target.module
            groups.append(ChannelGroup(names[root_module], len(group[0].idxs), tuple(slices)))
    heads = [_head_group(n, a) for n, a in attention.items()]
    return groups + heads + [_mha_group(n, m) for n, m in mha_modules(model).items()]


Importance = Callable[[ChannelGroup, dict[str, torch.Tensor]], torch.Tensor]


def _norm_scores(group: ChannelGroup, params: dict[str, torch.Tensor], p: int) -> torch.Tensor:
    """Group Lp importance: per root channel, the Lp norm over every Linear/Conv weight slice."""
    scores = torch.zeros(group.size, dtype=torch.float64)
    for s in group.slices:
        if not s.param.endswith("weight") or params[s.param].ndim < 2:
            continue  # biases and BN scales do not vote
        w = params[s.param].detach().abs().double() ** p
        per = w.sum(dim=[d for d in range(w.ndim) if d != s.dim])  # (size along dim,)
        scores.index_add_(0, s.root, per[s.idx])
    return scores ** (1.0 / p)


IMPORTANCES: dict[str, Importance] = {
    "l1": lambda g, params: _norm_scores(g, params, 1),
    "l2": lambda g, params: _norm_scores(g, params, 2),
}


@renamed_arguments(ratio="sparsity", ignored="exclude")
def channels(
    model: nn.Module,
    sparsity: float,
    importance: str | Importance = "l1",
    example_input: Any = None,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> Masks:
    """Masks that remove the ``sparsity`` fraction of least important channels of every group
    of coupled layers.

    Args:
        model: read, never changed.
        sparsity: fraction of each group's channels to remove, in [0, 1) (was ``ratio``).
        importance: ``"l1"`` / ``"l2"`` (group norm over the coupled weights) or a callable
            ``importance(group, params) -> (group.size,) scores``; lowest scores are removed.
        example_input: input used to trace the model (a tensor or a shape with batch).
        include: module names whose output channels may be removed (default: every layer's).
        exclude: module names whose output channels are never removed (was ``ignored``).

    Returns:
        Masks over every prunable weight plus the biases / BatchNorm parameters of pruned
        groups; ``shrink`` removes exactly the masked channels.
    """
    sparsity = check_sparsity(sparsity)
    scorer = IMPORTANCES.get(importance) if isinstance(importance, str) else importance
    if not callable(scorer):
        raise ConfigError(
            f"importance must be one of {sorted(IMPORTANCES)} or a callable, got {importance!r}"
        )
    weights = layer_weights(model)
    clean = copy_model(model, plain=True)  # masked weights count as zeros
    skipped = unsupported_mha(clean)
    if skipped:
        warnings.warn(
            f"channels: the heads of nn.MultiheadAttention {skipped} are left alone (nasviz prunes "
            "heads only with packed projections, no add_bias_kv, no add_zero_attn)",
            NasvizWarning,
            stacklevel=2,
        )
    example = example_input_for(clean, example_input)
    groups = channel_groups(clean, example)
    modules = {n for n, _ in model.named_modules()}
    for what, names in (("include", include), ("exclude", exclude)):
        unknown = sorted(set(names or ()) - modules)
        if unknown or (names is not None and not names):
            raise ConfigError(
                f"{what} must name modules of the model; unknown: {unknown}, "
                f"known: {sorted(modules - {''})[:8]}"
            )
    ignored_set = set(exclude or ())
    params = dict(clean.named_parameters())
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    plan = []
    for group in groups:
        outputs = {s.param.rpartition(".")[0] for s in group.slices if s.out}
        if group.root in ignored_set or outputs & ignored_set:
            continue
        if include is not None and group.root not in include and not outputs & set(include):
            continue
        k = round(sparsity * group.size)
        if k >= group.size:
            raise MaskError(
                f"sparsity {sparsity:.4g} would remove all {group.size} channels of layer "
                f"{group.root!r}; use a smaller sparsity or list the layer in exclude="
            )
        scores = torch.as_tensor(scorer(group, params)).flatten()
        if scores.numel() != group.size:
            raise ConfigError(
                f"importance returned {scores.numel()} scores for {group.size} channels of {group.root!r}"
            )
        plan.append((group, ~lowest_k(scores.double(), k)))
    for group, pruned in plan:
        for s in group.slices:
            mask = masks.setdefault(s.param, torch.ones_like(params[s.param], dtype=torch.bool))
            mask.index_fill_(s.dim, s.idx[pruned[s.root]], False)
    shape = tuple(example.shape) if isinstance(example, torch.Tensor) else None
    meta = {
        "method": "channels",
        "sparsity": sparsity,
        "importance": importance if isinstance(importance, str) else "custom",
        "structured": True,
        "input_shape": list(shape) if shape else None,
        "input_dtype": str(example.dtype) if shape else None,
    }
    return Masks(masks, meta=meta)
