"""``convert``: the user's own PyTorch model becomes a weight-sharing supernet.

What becomes elastic (see :func:`convert`):

* **width**: every group of coupled channels of Torch-Pruning's dependency graph (the groups
  :func:`nasviz.prune.channel_groups` finds: Linear -> Linear, Conv -> BN -> Conv, the channels
  of a residual stream, a flatten into a classifier) gets an elastic width, as a fraction of its
  channels. Channels are ranked once, at convert time, by group L1 importance; a subnet keeps the
  most important ones (the original order is kept among them). Residual-coupled channels are one
  group, so they stay coupled.
* **Hugging Face models** (:mod:`nasviz.hf`): their groups come from the model's adapter, not
  from tracing: every layer's FFN neurons and its attention as whole key/value heads (with
  their query heads), where the config can say fewer heads. A Hugging Face config holds one
  head count and one FFN width for all layers, so these get one dimension per kind shared by
  every layer: each export's config is rewritten to its sizes and round-trips through
  ``save_pretrained`` / ``from_pretrained``.
* **Hugging Face MoE models**: each layer's experts (router row and expert tensors together)
  kept as a width fraction, and the routers' top-k (``top_k.0``): one dimension each for
  every layer, for the same reason. The router and expert-stack classes get elastic
  subclasses whose attributes (``weight``, ``gate_up_proj``, ``down_proj``, ``num_experts``,
  ``top_k``) read the subnet's experts, so the model's own MoE code runs unchanged.
* **depth**: the trailing children of an ``nn.Sequential`` or ``nn.ModuleList`` that are blocks
  (modules with parameters and submodules) whose output has the shape of their input under every
  width get an elastic depth: a subnet runs the first ``depth`` children (an ``nn.ModuleList``
  must be iterated by the model's forward, which convert checks).

Sharing: the supernet holds a structural copy of the model whose modules hold the user's own
parameter and buffer tensors, so nothing is copied and training the supernet trains the
model. ``convert`` itself never writes to them (it traces and probes in eval mode without
autograd side effects); a failed call leaves the model as it was.

Every width and depth the space offers is probed once at convert time: a dimension whose
smallest value breaks the forward (a reshape with a hard-coded size, say), or a block whose
input and output would differ in size, is left static and :meth:`ConvertedSupernet.report`
says why.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from nasviz._flops import flop_counter
from nasviz.errors import ConfigError, ShapeError
from nasviz.space import Arch, SearchSpace
from nasviz.supernet._base import BNStats, ForwardState, Supernet, register_supernet
from nasviz.supernet._convert_ops import (
    ACTIVE_PLAN,
    ElasticBatchNormBase,
    make_elastic,
    shrink_module,
)
from nasviz.supernet._convert_space import (
    DepthDim,
    TopKDim,
    WidthDim,
    build_dims,
    child,
    probe_dims,
    record_forward,
    run,
    selection,
    tensor_of,
)
from nasviz.supernet._prepared import Prepared

__all__ = ["ConvertConfig", "ConvertedSupernet", "convert"]

SHARES = ("group", "block", "model")
#: Bytes of prepared (sliced, contiguous) weight copies a converted supernet may hold: subnets
#: kept = this budget // the model's parameter bytes (a model above it keeps none).
PREPARED_BYTES = 2**30
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class ConvertConfig:
    """What a converted supernet was made of (checked when loading weights).

    Attributes:
        model_class: the user's model class (module and name).
        structure: a hash of the model's parameter names and shapes.
        width: the allowed width fractions.
        depth: whether depth was made elastic.
        share: ``"group"``, ``"block"`` or ``"model"``.
        input_shape: the example input's shape.
        input_dtype: the example input's dtype.
    """

    model_class: str = ""
    structure: str = ""
    width: tuple[float, ...] = ()
    depth: bool = True
    share: str = "block"
    input_shape: tuple[int, ...] = ()
    input_dtype: str = "float32"


class _Plan(NamedTuple):
    arch: Arch
    select: dict[str, tuple[tuple[int, torch.Tensor], ...]]  # param -> ((dim, kept idx), ...)
    depth: dict[str, int]  # container name -> children run
    skipped: frozenset[str]  # names of the blocks not run
    top_k: dict[str, int]  # Hugging Face MoE router name -> experts per token


class _Active(NamedTuple):
    """What the elastic layers read during one forward (see ``_convert_ops.ACTIVE_PLAN``)."""

    select: dict[str, tuple[tuple[int, torch.Tensor], ...]]
    depth: dict[str, int]
    collect: dict[str, list] | None  # a BN re-calibration pass fills it
    stats: BNStats | None  # the subnet's re-calibrated BN statistics, by layer name
    prepared: Prepared | None = None  # the subnet's sliced weights, made once (small models)
    top_k: dict[str, int] = {}  # noqa: RUF012  (read only) router name -> experts per token


def _structure(model: nn.Module) -> str:
    text = ";".join(f"{n}:{tuple(t.shape)}" for n, t in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _shared_copy(model: nn.Module) -> nn.Module:
    """New module objects holding ``model``'s own parameter and buffer tensors."""
    memo: dict[int, Any] = {id(t): t for t in (*model.parameters(), *model.buffers())}
    try:
        return copy.deepcopy(model, memo)
    except Exception as exc:
        raise ConfigError(
            f"convert: {type(model).__name__} cannot be copied structurally "
            f"({type(exc).__name__}: {exc}); convert needs a model copy.deepcopy can copy"
        ) from exc


def _check_width(width: Any) -> tuple[float, ...]:
    if width is None:
        return ()
    if isinstance(width, int | float) and not isinstance(width, bool):
        width = (width,)
    try:
        values = tuple(sorted({float(w) for w in width}))
    except (TypeError, ValueError):
        values = ()
    if not values or any(not 0.0 < w <= 1.0 for w in values) or values[-1] != 1.0:
        raise ConfigError(
            f"convert: width must be fractions in (0, 1] including 1.0 (the original width), "
            f"such as (0.25, 0.5, 0.75, 1.0), or None for no elastic width; got {width!r}"
        )
    return values


@register_supernet
class ConvertedSupernet(Supernet):
    """A supernet made from a user's model by :func:`convert` (see the module docstring).

    Dimensions are ``width.i`` (a fraction of the channels of width dimension ``i``) and
    ``depth.i`` (children run of container ``i``); :meth:`report` and :attr:`dims` say which
    modules each one shrinks. The largest subnet is the model itself.

    Attributes:
        model: the elastic structural copy (its tensors are the user's).
        dims: ``{dim name: WidthDim or DepthDim}``: what each dimension shrinks.
    """

    family = "Converted"
    config_class = ConvertConfig
    shrink_order = ("depth", "width", "top_k")
    width_groups = ()  # channels were ranked at convert time; reorder_channels is a no-op
    default_epochs = 5
    default_lr = 1e-3

    def __init__(self, **kwargs: Any):
        raise ConfigError(
            "a converted supernet is made by nasviz.supernet.convert(model, example_input); to "
            "restore saved weights, convert the same model again and call load_weights(path)"
        )

    @classmethod
    def _build(
        cls,
        model: nn.Module,
        example: torch.Tensor,
        width: tuple[float, ...],
        depth: bool,
        share: str,
        ffn: bool,
        heads: bool = True,
        experts: bool = True,
    ) -> ConvertedSupernet:
        config = ConvertConfig(
            f"{type(model).__module__}.{type(model).__qualname__}",
            _structure(model),
            width,
            depth,
            share,
            tuple(example.shape),
            str(example.dtype).removeprefix("torch."),
        )
        net = cls.__new__(cls)
        Supernet.__init__(net, config)
        elastic = _shared_copy(model).eval()
        pristine = _shared_copy(model)
        record = record_forward(elastic, example)
        dims, static = build_dims(
            elastic, example, record, width, depth, share, ffn, heads, experts
        )
        swap = {m for d in dims.values() for m in d.swap}
        swap |= {n for n, m in elastic.named_modules() if type(m) in _BATCH_NORMS}  # re-calibrated
        for name in sorted(swap):
            make_elastic(elastic.get_submodule(name), name)
        for module in elastic.modules():
            if isinstance(module, nn.TransformerEncoderLayer):
                # its fused eval path reads linear1/linear2 weights directly: use the module path
                module.activation_relu_or_gelu = 0
        net.model = elastic
        # eval forwards without autograd reuse each subnet's sliced weights (as the built-in
        # families do): an evaluation runs one subnet over many batches, so only its first
        # batch slices. The copies are bounded by PREPARED_BYTES: as many subnets as fit
        # (at most the cache's default), none for a model larger than the budget
        weights = sum(t.numel() * t.element_size() for t in {*model.parameters()})
        fit = PREPARED_BYTES // max(weights, 1)
        net._prepare = fit >= 1
        net._prepared_cache.capacity = int(min(fit, net._prepared_cache.capacity)) or 1
        net.__dict__["_pristine"] = pristine  # not a submodule: its tensors are the model's
        net._example = example.detach().clone()
        net._largest, net._has_bn = None, False  # set by _finish_init; probes need no BN stats
        net._macs = {}  # (arch, input shape) -> MACs
        net._index_cache = {}  # (param, dim, fractions) -> kept indices
        rank = 0
        for name, d in list(dims.items()):
            if isinstance(d, WidthDim):  # channel rankings are state: checkpoints carry them
                named = []
                for group, order in d.groups:
                    net.register_buffer(f"rank_{rank}", order)
                    named.append((group, f"rank_{rank}"))
                    rank += 1
                dims[name] = dataclasses.replace(d, groups=tuple(named))
        net.dims, net._static = dims, static
        net.space = SearchSpace({n: list(d.choices) for n, d in dims.items()}) if dims else None
        if net.space is None:
            raise ConfigError(
                f"convert: found nothing to make elastic in {type(model).__name__} (static "
                f"modules: {dict(list(static.items())[:6])}); see the reasons above"
            )
        dropped = probe_dims(net, example, record)
        for name, reason in dropped.items():
            net._static.update(dict.fromkeys(net.dims[name].modules, reason))
            del net.dims[name]
        if not net.dims:
            raise ConfigError(
                f"convert: no dimension of {type(model).__name__} survived probing: "
                + "; ".join(f"{k}: {v}" for k, v in dropped.items())
            )
        _renumber(net)
        with net.subnet(net.space.smallest()):
            run(net, example)  # every dimension at its smallest together
        net._finish_init()
        net.train(model.training)
        return net

    def _finish_init(self) -> None:
        super()._finish_init()
        self._has_bn = any(isinstance(m, ElasticBatchNormBase) for m in self.modules())

    # ---- archs ---------------------------------------------------------------------------
    def canonical(self, arch: Mapping[str, Any]) -> Arch:
        """``arch`` with the widths of dimensions that only shrink skipped blocks set to the
        smallest value."""
        arch = self.space.validate(arch)
        plan = self._plan(arch)
        unused = {
            n: d.choices[0]
            for n, d in self.dims.items()
            if isinstance(d, WidthDim) and d.blocks and all(b in plan.skipped for b in d.blocks)
        }
        for n, d in self.dims.items():  # a top-k above the experts kept picks them all
            if isinstance(d, TopKDim):
                kept = max(self._kept_rows(plan, f"{r}.weight") for r in d.routers)
                if arch[n] > kept:
                    unused[n] = max(c for c in d.choices if c <= kept)
        return arch.replace(**unused) if unused else arch

    def _kept_rows(self, plan: _Plan, param: str) -> int:
        """Rows (dim 0) of parameter ``param`` the subnet of ``plan`` keeps."""
        kept = dict(plan.select.get(param, ())).get(0)
        return tensor_of(self.model, param).shape[0] if kept is None else int(kept.numel())

    def _make_plan(self, arch: Arch) -> _Plan:
        fractions = {n: arch[n] for n, d in self.dims.items() if isinstance(d, WidthDim)}
        select = selection(self, fractions)
        depth, skipped, top_k = {}, set(), {}
        for n, d in self.dims.items():
            if isinstance(d, DepthDim):
                depth[d.container] = arch[n]
                skipped.update(child(d.container, i) for i in range(arch[n], d.size))
            elif isinstance(d, TopKDim):
                top_k.update(dict.fromkeys(d.routers, arch[n]))
        return _Plan(arch, select, depth, frozenset(skipped), top_k)

    # ---- forward -------------------------------------------------------------------------
    @property
    def input_dtype(self) -> torch.dtype:
        return self._example.dtype

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        expected = tuple(self.config.input_shape)
        ok = len(shape) == len(expected)
        if ok and not self._example.dtype.is_floating_point:
            pass  # token ids: any batch and sequence length
        elif ok and len(shape) in (2, 3):
            ok = shape[-1] == expected[-1]  # features
        elif ok and len(shape) > 3:
            ok = shape[1] == expected[1]  # channels
        if not ok:
            raise ShapeError(
                f"the converted {self.config.model_class} expects inputs shaped like its example "
                f"input {expected} (batch and, for images, sizes may differ); got {tuple(shape)}"
            )

    def forward(self, x: torch.Tensor) -> Any:
        # x: an input like the example input -> what the user's model returns
        self._check_input(x)
        state = self._state()
        plan = state.plan
        stats = self._stats(state)
        prepared = self._prepared(state, stats) if self._prepare else None
        active = _Active(plan.select, plan.depth, state.collect, stats, prepared, plan.top_k)
        token = ACTIVE_PLAN.set(active)
        try:
            return self.model(x)
        finally:
            ACTIVE_PLAN.reset(token)

    # ---- export and cost -----------------------------------------------------------------
    def _export(self, plan: _Plan, stats: BNStats | None) -> nn.Module:
        current = dict(self.model.named_parameters(remove_duplicate=False))
        current.update(self.model.named_buffers(remove_duplicate=False))
        memo: dict[int, Any] = {}
        sizes: dict[str, dict[str, tuple[int, ...]]] = {}
        pristine = self._pristine
        for kind, named in (
            ("param", pristine.named_parameters(remove_duplicate=False)),
            ("buffer", pristine.named_buffers(remove_duplicate=False)),
        ):
            for name, tensor in named:
                if id(tensor) in memo:
                    continue
                value = current[name].detach()
                owner, _, attr = name.rpartition(".")
                if stats and owner in stats and attr in ("running_mean", "running_var"):
                    value = stats[owner][attr == "running_var"]  # already the kept channels
                else:
                    for dim, idx in plan.select.get(name, ()):
                        value = value.index_select(dim, idx.to(value.device))
                value = value.clone()
                if kind == "param":
                    value = nn.Parameter(value, requires_grad=tensor.requires_grad)
                memo[id(tensor)] = value
                if name in plan.select:
                    sizes.setdefault(owner, {})[attr] = tuple(value.shape)
        static = copy.deepcopy(pristine, memo)
        for owner, attrs in sizes.items():
            shrink_module(static.get_submodule(owner), attrs)
        for router, k in plan.top_k.items():  # capped at the experts the subnet keeps
            module = static.get_submodule(router)
            module.top_k = min(k, module.num_experts)
        for container, d in plan.depth.items():
            module = static.get_submodule(container)
            for i in reversed(range(d, len(module))):
                del module[i]
        _rewrite_hf_config(static, plan.depth, bool(plan.select))
        return static

    def count_params(self, arch: Mapping[str, Any]) -> int:
        """Parameters of subnet ``arch`` (equals the export's count)."""
        plan = self._plan(arch)
        total = 0
        for name, param in self.model.named_parameters():
            if any(name.startswith(f"{b}.") for b in plan.skipped):
                continue
            shape = list(param.shape)
            for dim, idx in plan.select.get(name, ()):
                shape[dim] = idx.numel()
            total += math.prod(shape)
        return total

    def _count_macs(self, plan: _Plan, shape: tuple[int, ...]) -> int:
        key = (plan.arch, shape)
        if key not in self._macs:
            x = torch.zeros(shape, dtype=self._example.dtype, device=self._example.device)
            device = next(self.parameters()).device
            counter = flop_counter()  # counts CPU attention kernels, as objectives.count_macs
            training = self.training
            self.eval()
            try:
                # autograd on keeps torch's fused encoder fast path off (the path the model
                # takes when trained), so the count is the same in every mode; no BN
                # re-calibration, whose forwards the counter would count too
                with (
                    torch.enable_grad(),
                    self._activate(ForwardState(plan, calibrate=False)),
                    counter,
                ):
                    self(x.to(device))
            finally:
                self.train(training)
            self._macs[key] = counter.get_total_flops() // 2
        return self._macs[key]

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ):
        """Loads weights and channel rankings; forgets what was derived from the old rankings."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._plans.clear()
        self._index_cache.clear()
        self._macs.clear()
        self.clear_prepared()
        self.__dict__.pop("_touch", None)
        self._finish_init()
        return result

    def reorder_channels(self, optimizer_state: Mapping[torch.Tensor, Any] | None = None) -> None:
        """Nothing to do: channels were ranked by importance when the model was converted
        (sorting them in place would change the user's model)."""

    # ---- what became elastic -------------------------------------------------------------
    def report(self) -> Any:
        """A DataFrame with one row per module of the model: ``module``, ``type``, ``params``,
        ``elastic`` (bool), ``dims`` (the dimensions that shrink it) and ``why``."""
        import pandas as pd

        by_module: dict[str, list[str]] = {}
        whys: dict[str, list[str]] = {}
        for n, d in self.dims.items():
            for m in d.modules:
                by_module.setdefault(m, []).append(n)
                whys.setdefault(m, []).append(d.describe(m))
        rows = []
        for name, module in self._pristine.named_modules():
            if not name:
                continue
            own = sum(p.numel() for p in module.parameters(recurse=False))
            elastic = name in by_module
            rows.append(
                {
                    "module": name,
                    "type": type(module).__name__,
                    "params": own,
                    "elastic": elastic,
                    "dims": tuple(by_module.get(name, ())),
                    "why": "; ".join(whys[name]) if elastic else self._static.get(name, ""),
                }
            )
        return pd.DataFrame(rows)


def _rewrite_hf_config(static: nn.Module, depth: Mapping[str, int], shrunk: bool) -> None:
    """A Hugging Face export's config says its own layer count, head counts and FFN width (so
    that ``save_pretrained`` / ``from_pretrained`` round-trip): the copy's config is rewritten
    when its layers shrank (the config object is the export's own deep copy: the user's model
    is not touched)."""
    from nasviz.hf import find_adapter
    from nasviz.prune._hf import sync_config

    adapter = find_adapter(static)
    if adapter is None:
        return
    layers = adapter.layers()
    if any(static.get_submodule(c) is layers for c in depth) and getattr(
        adapter.config, "num_hidden_layers", len(layers)
    ) != len(layers):
        adapter.set_config(adapter.rewrite_config(layers=range(len(layers))))
    if shrunk:
        why = sync_config(static)
        if why is not None:  # convert shares head and FFN widths across layers: not expected
            raise ConfigError(f"the export's config cannot describe its layers: {why}")
    moe = filter(None, map(adapter.experts, range(adapter.num_layers)))
    sizes = {(b.num_experts, b.top_k) for b in moe}
    if len(sizes) == 1:
        experts, top_k = next(iter(sizes))
        f = adapter.family
        if (experts, top_k) != (
            getattr(adapter.config, f.experts_key),
            getattr(adapter.config, f.top_k_key),
        ):
            adapter.set_config(adapter.rewrite_config(experts=experts, top_k=top_k))
    elif sizes:  # one experts and one top-k dimension for every layer: not expected
        raise ConfigError(f"the export's MoE layers differ in (experts, top-k): {sorted(sizes)}")


def _renumber(net: ConvertedSupernet) -> None:
    """Names the dimensions left after probing ``width.0..`` / ``depth.0..`` / ``top_k.0``
    again."""
    renamed: dict[str, Any] = {}
    for kind in ("width", "depth", "top_k"):
        for i, d in enumerate(d for n, d in net.dims.items() if n.startswith(f"{kind}.")):
            renamed[f"{kind}.{i}"] = d
    net.dims = renamed
    net._index_cache.clear()
    net._plans.clear()
    net.__dict__.pop("_touch", None)
    net.space = SearchSpace({n: list(d.choices) for n, d in renamed.items()})


def convert(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    width: Sequence[float] | None = (0.25, 0.5, 0.75, 1.0),
    depth: bool = True,
    heads: bool = True,
    ffn: bool = True,
    experts: bool = True,
    share: str = "block",
) -> ConvertedSupernet:
    """Makes ``model`` a weight-sharing supernet whose largest subnet is ``model`` itself.

    Args:
        model: the user's PyTorch model; read, never changed (the supernet shares its
            parameters, so *training* the supernet trains it).
        example_input: a batch the model takes (a tensor); used to trace and probe it.
        width: the width fractions each elastic channel group may take (1.0 included), or
            None for no elastic width.
        depth: make runs of shape-preserving blocks in ``nn.Sequential`` / ``nn.ModuleList``
            elastic in depth.
        heads: attention heads of Hugging Face models (Llama / Mistral / Qwen2 / Mixtral
            with grouped-query attention: whole key/value heads with their query heads),
            where the config can say fewer heads; ``nn.MultiheadAttention`` and BERT / ViT /
            GPT-2 style attention stay static and :meth:`~ConvertedSupernet.report` says why.
        ffn: the hidden width of feed-forward blocks (the ``linear1`` of
            ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer``, a Hugging Face
            layer's FFN neurons); False keeps it.
        experts: the experts of Hugging Face MoE models (Mixtral, Qwen2-MoE, Qwen3-MoE,
            OLMoE): a fraction of each layer's experts kept (ranked by the L1 norm of their
            router row and weights; the router scores only those) and the top-k, each one
            dimension for every layer; False keeps them.
        share: ``"group"`` (one width dimension per channel group), ``"block"`` (one per block:
            the groups rooted in the same child of a Sequential/ModuleList share it) or
            ``"model"`` (one width for everything).

    Returns:
        a :class:`ConvertedSupernet`.

    Raises:
        ConfigError: bad arguments, a model that cannot be traced, or nothing to make elastic.
        ShapeError: the model fails on ``example_input`` (the message names the module).
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"convert: model must be a torch nn.Module, got {type(model).__name__}")
    if isinstance(model, Supernet):
        raise ConfigError("convert: model is already a nasviz supernet")
    if not isinstance(example_input, torch.Tensor):
        raise ConfigError(
            "convert: example_input must be a tensor the model takes (a batch), got "
            f"{type(example_input).__name__}"
        )
    for name, value in (("depth", depth), ("heads", heads), ("ffn", ffn), ("experts", experts)):
        if not isinstance(value, bool):
            raise ConfigError(f"convert: {name} must be True or False, got {value!r}")
    if share not in SHARES:
        raise ConfigError(f"convert: share must be one of {SHARES}, got {share!r}")
    fractions = _check_width(width)
    return ConvertedSupernet._build(
        model, example_input, fractions, depth, share, ffn, heads, experts
    )
