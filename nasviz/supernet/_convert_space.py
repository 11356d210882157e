"""Finding a converted model's elastic dimensions, and the channels each subnet keeps.

:func:`record_forward` runs the example input once and records every module's input and output
shapes (and, when it fails, which module failed); :func:`build_dims` turns Torch-Pruning's
channel groups into width dimensions and runs of shape-preserving blocks into depth dimensions;
:func:`probe_dims` runs each dimension at its smallest value and drops the ones the model's own
code cannot follow; :func:`selection` maps width fractions to the kept indices of every sliced
parameter. Everything runs on the supernet's structural copy, in eval mode, without autograd.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from nasviz.errors import ConfigError, ShapeError
from nasviz.prune._channels import IMPORTANCES, ChannelGroup, channel_groups
from nasviz.supernet._convert_ops import elastic_class, register_moe_classes

__all__ = [
    "DepthDim",
    "Record",
    "TopKDim",
    "WidthDim",
    "build_dims",
    "child",
    "probe_dims",
    "record_forward",
]

_FFN_PARENTS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
_CONTAINERS = (nn.Sequential, nn.ModuleList)


def child(container: str, i: int) -> str:
    """The name of child ``i`` of the container called ``container`` ("" is the model)."""
    return f"{container}.{i}" if container else str(i)


@dataclass(frozen=True)
class WidthDim:
    """A width dimension: fractions of the channels of its groups (most important first).

    Attributes:
        choices: the allowed fractions.
        groups: ``(group, ranking)`` pairs: the ranking of the group's root channels, most
            important first (a tensor; in a supernet, the name of its buffer holding it).
        key: the block (or group root) the dimension belongs to.
        blocks: skippable blocks holding every module it shrinks (empty: some module is in none).
    """

    choices: tuple[float, ...]
    groups: tuple[tuple[ChannelGroup, torch.Tensor], ...]
    key: str
    blocks: tuple[str, ...] = ()

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(sorted({s.param.rpartition(".")[0] for g, _ in self.groups for s in g.slices}))

    swap = modules

    def describe(self, module: str) -> str:
        kinds = {g.kind for g, _ in self.groups}
        if kinds <= set(HF_KINDS):
            (kind,) = kinds
            what, unit = HF_KINDS[kind]
            sizes = "/".join(sorted({str(g.size) for g, _ in self.groups}))
            return (
                f"width: {what} of every layer together ({sizes} {unit} each, most important "
                "kept; a Hugging Face config holds one size for all layers)"
            )
        sizes = ", ".join(f"{g.root or 'input'} ({g.size} channels)" for g, _ in self.groups)
        return f"width: channels of group {sizes}, most important kept"


#: Hugging Face channel group kind -> (what it is, its unit), see nasviz.prune.channel_groups.
HF_KINDS = {
    "hf-heads": ("attention heads", "key/value heads"),
    "hf-neurons": ("feed-forward width", "neurons"),
    "hf-experts": ("experts kept", "experts"),
}


@dataclass(frozen=True)
class TopKDim:
    """Experts per token of a Hugging Face MoE model's routers (one value for every layer: a
    config holds one top-k), capped at the experts a subnet keeps."""

    routers: tuple[str, ...]
    choices: tuple[int, ...]

    @property
    def modules(self) -> tuple[str, ...]:
        return self.routers

    swap = modules

    def describe(self, module: str) -> str:
        return (
            f"top-k: experts per token {'/'.join(map(str, self.choices))} (every MoE layer "
            "together: a Hugging Face config holds one top-k)"
        )


def _expert_dims(model: nn.Module, experts: bool) -> tuple[list[ChannelGroup], TopKDim | None]:
    """A Hugging Face MoE model's expert groups (router rows and expert tensors of each expert
    go together) and its top-k dimension; none for other models."""
    from nasviz.hf import find_adapter
    from nasviz.prune._channels import Slice

    adapter = find_adapter(model)
    blocks = [] if adapter is None else [adapter.experts(i) for i in adapter.moe_layers()]
    if not blocks:
        return [], None
    groups = []
    for b in blocks:
        register_moe_classes(type(b.router), type(b.experts))
        idx = torch.arange(b.num_experts)
        router = next(n for n, m in model.named_modules() if m is b.router)
        stack = next(n for n, m in model.named_modules() if m is b.experts)
        slices = [Slice(f"{router}.weight", 0, idx, idx, True)]
        slices += [Slice(f"{stack}.{p}", 0, idx, idx, True) for p in ("gate_up_proj", "down_proj")]
        groups.append(ChannelGroup(b.name, b.num_experts, tuple(slices), kind="hf-experts"))
    top_k = max(b.top_k for b in blocks)
    routers = tuple(g.slices[0].param.rpartition(".")[0] for g in groups)
    dim = TopKDim(routers, tuple(range(1, top_k + 1))) if experts and top_k > 1 else None
    return groups, dim


@dataclass(frozen=True)
class DepthDim:
    """A depth dimension: how many children of ``container`` run (the last ones are blocks)."""

    container: str
    size: int
    choices: tuple[int, ...]

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(child(self.container, i) for i in range(self.choices[0], self.size))

    @property
    def swap(self) -> tuple[str, ...]:
        return (self.container,)

    def describe(self, module: str) -> str:
        return f"depth: {self.container} runs its first {'/'.join(map(str, self.choices))} children"


@dataclass
class Record:
    """What one forward did: per module name, (input shape, output shape, calls)."""

    output: Any = None
    shapes: dict[str, tuple[Any, Any, int]] = field(default_factory=dict)


def _shape(value: Any) -> Any:
    if isinstance(value, tuple | list) and value:
        value = value[0]
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


@contextlib.contextmanager
def _recording(model: nn.Module, record: Record) -> Iterator[list[str]]:
    """Hooks that fill ``record.shapes``; yields the stack of modules entered but not left."""
    stack: list[str] = []
    handles = []
    for name, module in model.named_modules():

        def pre(mod: nn.Module, args: Any, name: str = name) -> None:
            stack.append(name)

        def post(mod: nn.Module, args: Any, out: Any, name: str = name) -> None:
            calls = record.shapes.get(name, (None, None, 0))[2] + 1
            record.shapes[name] = (_shape(args), _shape(out), calls)
            if stack and stack[-1] == name:
                stack.pop()

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


def run(model: nn.Module, x: torch.Tensor) -> Record:
    """Runs ``model(x)`` in eval mode without autograd, recording shapes; a failure is a
    ShapeError naming the innermost module that was running."""
    record = Record()
    with _recording(model, record) as stack, torch.no_grad():
        try:
            record.output = model(x)
        except Exception as exc:
            where = next((n for n in reversed(stack) if n), None)
            module = (
                f"module {where!r} ({type(model.get_submodule(where)).__name__})"
                if where
                else "the model"
            )
            raise ShapeError(
                f"{type(model).__name__} failed on an input of shape {tuple(x.shape)} "
                f"({x.dtype}) in {module}: {type(exc).__name__}: {exc}"
            ) from exc
    return record


def record_forward(model: nn.Module, example: torch.Tensor) -> Record:
    """The example forward of the (eval-mode) copy; a ShapeError says where it failed."""
    try:
        return run(model, example)
    except ShapeError as exc:
        raise ShapeError(f"convert: example_input does not fit the model: {exc}") from exc


def _block_of(name: str, containers: set[str]) -> str | None:
    """The nearest enclosing child of a Sequential/ModuleList (``stage.i``), or None."""
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if ".".join(parts[: end - 1]) in containers:
            return ".".join(parts[:end])
    return None


def _hf_reason(
    group: ChannelGroup, model: nn.Module, ffn: bool, heads: bool, experts: bool
) -> str | None:
    """Why a Hugging Face model's head or neuron group stays static (None: it can be elastic)."""
    from nasviz.hf import find_adapter

    adapter = find_adapter(model)
    if group.kind == "hf-experts":
        return None if experts else "experts left static (experts=False)"
    if group.kind == "hf-heads":
        if not heads:
            return "attention heads left static (heads=False)"
        limit = adapter.limits()["heads"]
        if limit.startswith("no:"):
            return f"attention heads left static: the config cannot say fewer heads ({limit[4:]})"
        if adapter.family.packed_qkv:
            return "attention heads left static: q, k and v are one packed projection split at a fixed size"
        return None
    if not ffn:
        return "feed-forward width left static (ffn=False)"
    limit = adapter.limits()["ffn"]
    return f"feed-forward width left static ({limit[4:]})" if limit.startswith("no:") else None


def _group_reason(
    group: ChannelGroup, model: nn.Module, ffn: bool, heads: bool, experts: bool = True
) -> str | None:
    """Why a channel group stays static (None: it can be elastic)."""
    if group.kind in HF_KINDS:
        reason = _hf_reason(group, model, ffn, heads, experts)
        if reason is not None:
            return reason
    elif group.kind != "channels":
        return "attention heads are not elastic in this version of convert"
    if group.size < 2:
        return "a single channel"
    for s in group.slices:
        owner = s.param.rpartition(".")[0]
        module = model.get_submodule(owner)
        if elastic_class(type(module)) is None:
            return f"{owner} is a {type(module).__name__}, which convert cannot slice"
    if not ffn:
        parent, _, leaf = group.root.rpartition(".")
        if leaf == "linear1" and isinstance(model.get_submodule(parent), _FFN_PARENTS):
            return "feed-forward width left static (ffn=False)"
    return None


def _static_reason(module: nn.Module) -> str:
    if not any(True for _ in module.parameters(recurse=False)):
        return "no parameters of its own" if not list(module.children()) else "container"
    if isinstance(module, nn.MultiheadAttention):
        return "attention heads are not elastic in this version of convert"
    if isinstance(module, nn.LayerNorm | nn.GroupNorm | nn.Embedding):
        return f"{type(module).__name__} needs the full feature dimension, so the channels it sees stay"
    if elastic_class(type(module)) is not None:
        return (
            "its channels are not in a prunable group (they reach the model's output, or are "
            "coupled to a layer that cannot shrink)"
        )
    return f"{type(module).__name__} is not a layer convert can slice"


def build_dims(
    model: nn.Module,
    example: torch.Tensor,
    record: Record,
    width: tuple[float, ...],
    depth: bool,
    share: str,
    ffn: bool,
    heads: bool = True,
    experts: bool = True,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Width and depth dimensions of the copy ``model`` and, per static module, why."""
    static: dict[str, str] = {n: _static_reason(m) for n, m in model.named_modules() if n}
    containers = {n for n, m in model.named_modules() if type(m) in (nn.Sequential, nn.ModuleList)}
    depth_dims: list[DepthDim] = []
    if depth:
        for name in sorted(containers):
            container = model.get_submodule(name)
            children = list(container._modules)
            first = len(children)
            for i in range(len(children) - 1, -1, -1):
                module = container._modules[children[i]]
                shape_in, shape_out, calls = record.shapes.get(child(name, i), (None, None, 0))
                block = any(True for _ in module.parameters()) and any(
                    True for _ in module.children()
                )
                if not (block and calls == 1 and shape_in is not None and shape_in == shape_out):
                    break
                first = i
            low = max(1, first)
            if low < len(children):
                depth_dims.append(
                    DepthDim(name, len(children), tuple(range(low, len(children) + 1)))
                )
    skippable = {m for d in depth_dims for m in d.modules}
    width_dims: dict[str, list] = {}
    top_k = None
    if width and len(width) > 1:
        try:
            groups = channel_groups(model, example)
        except ConfigError as exc:
            raise ConfigError(
                f"convert: Torch-Pruning's dependency graph (which finds the channel groups for "
                f"width) could not trace {type(model).__name__}: {exc}. Wrap the model so its "
                "forward returns a tensor (for a Hugging Face model: the logits, use_cache=False), "
                "or pass width=None to make only depth elastic"
            ) from exc
        expert_groups, top_k = _expert_dims(model, experts)
        groups = [*groups, *expert_groups]
        params = dict(model.named_parameters())
        for group in groups:
            reason = _group_reason(group, model, ffn, heads, experts)
            if reason is not None:
                for s in group.slices:
                    static.setdefault(s.param.rpartition(".")[0], reason)
                    if static[s.param.rpartition(".")[0]].startswith("its channels"):
                        static[s.param.rpartition(".")[0]] = reason
                continue
            scores = IMPORTANCES["l1"](group, params)
            order = torch.argsort(scores, descending=True, stable=True)
            key = {"group": group.root, "block": _block_of(group.root, containers) or group.root}
            if group.kind in HF_KINDS and share != "model":
                key = {share: group.kind}  # one size for every layer: what a config can say
            width_dims.setdefault(key.get(share, ""), []).append((group, order))
    dims: dict[str, Any] = {}
    for i, (key, groups) in enumerate(width_dims.items()):
        wd = WidthDim(width, tuple(groups), key)
        blocks = []
        for m in wd.modules:
            block = next((b for b in skippable if m.startswith(f"{b}.")), None)
            blocks.append(block)
        dims[f"width.{i}"] = replace(
            wd, blocks=() if None in blocks else tuple(sorted(set(blocks)))
        )
    for i, d in enumerate(depth_dims):
        dims[f"depth.{i}"] = d
    if width and len(width) > 1 and top_k is not None:
        dims["top_k.0"] = top_k
    for d in dims.values():
        for m in d.modules:
            static.pop(m, None)
    return dims, static


def selection(
    net: Any, fractions: dict[str, float]
) -> dict[str, tuple[tuple[int, torch.Tensor], ...]]:
    """param/buffer name -> ((dim, kept indices), ...) for width ``fractions`` by dim name."""
    touch = getattr(net, "_touch", None)
    if touch is None:
        touch = net._touch = _touch_map(net)
    select: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for (param, dim), entries in touch.items():
        fr = tuple(fractions[dn] for dn, _, _ in entries)
        if all(f == 1.0 for f in fr):
            continue
        key = (param, dim, fr)
        idx = net._index_cache.get(key)
        if idx is None:
            size = tensor_of(net.model, param).shape[dim]
            keep = torch.ones(size, dtype=torch.bool)
            for (_, s, removed), f in zip(entries, fr, strict=True):
                if f < 1.0:
                    keep[s.idx[removed[f][s.root]]] = False
            idx = net._index_cache[key] = keep.nonzero().flatten()
        select.setdefault(param, []).append((dim, idx))
    return {k: tuple(v) for k, v in select.items()}


def tensor_of(model: nn.Module, name: str) -> torch.Tensor | None:
    """The parameter or buffer of ``model`` called ``name``, whole: as stored, not as an
    elastic layer's attribute shows it during a subnet's forward."""
    owner, _, attr = name.rpartition(".")
    module = model.get_submodule(owner)
    for store in (module._parameters, module._buffers):
        if attr in store:
            return store[attr]
    return getattr(module, attr)


def _touch_map(net: Any) -> dict[tuple[str, int], list]:
    """(param, dim) -> [(dim name, slice, {fraction: removed roots})] over every width dim."""
    touch: dict[tuple[str, int], list] = {}
    for dn, d in net.dims.items():
        if not isinstance(d, WidthDim):
            continue
        for group, rank in d.groups:
            order = net.get_buffer(rank).cpu()
            removed = {}
            for f in d.choices:
                mask = torch.ones(group.size, dtype=torch.bool)
                mask[order[: max(1, round(f * group.size))]] = False
                removed[f] = mask
            for s in group.slices:
                names = [s.param]
                owner, _, attr = s.param.rpartition(".")
                module = net.model.get_submodule(owner)
                if attr == "weight" and isinstance(module, nn.modules.batchnorm._BatchNorm):
                    names += [f"{owner}.running_mean", f"{owner}.running_var"]
                for name in names:
                    if tensor_of(net.model, name) is not None:
                        touch.setdefault((name, s.dim), []).append((dn, s, removed))
    return touch


def probe_dims(net: Any, example: torch.Tensor, record: Record) -> dict[str, str]:
    """Runs each dimension at its smallest value; returns ``{dim: why it is dropped}``."""
    dropped: dict[str, str] = {}
    largest = net.space.largest()
    depth_low: dict[str, int] = {}
    for name, d in net.dims.items():
        arch = largest.replace(**{name: d.choices[0]})
        try:
            with net.subnet(arch):
                rec = run(net, example)
        except ShapeError as exc:
            dropped[name] = f"forward failed at {name}={d.choices[0]}: {exc}"
            continue
        for dn, dd in net.dims.items():
            if not isinstance(dd, DepthDim):
                continue
            for i in range(dd.choices[0], dd.size):
                shape_in, shape_out, _ = rec.shapes.get(
                    f"model.{child(dd.container, i)}", (0, 0, 0)
                )
                if isinstance(d, WidthDim) and shape_in != shape_out:
                    depth_low[dn] = max(depth_low.get(dn, 0), i + 1)
        if isinstance(d, DepthDim):
            ran = [i for i in d.modules if f"model.{i}" in rec.shapes]
            if ran:
                dropped[name] = (
                    f"the model's forward does not iterate over {d.container!r} "
                    "(it indexes its children), so convert cannot skip them"
                )
    for dn, low in depth_low.items():
        d = net.dims[dn]
        if low >= d.size:
            dropped.setdefault(
                dn,
                f"the blocks of {d.container!r} change the channels a width dimension shrinks "
                "(no residual connection), so skipping one would change the next layer's input",
            )
        elif dn not in dropped:
            net.dims[dn] = replace(d, choices=tuple(c for c in d.choices if c >= low))
    return dropped
