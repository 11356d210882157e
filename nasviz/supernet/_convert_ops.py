"""The elastic layers of a converted model: torch's own layers reading the active subnet's
channel indices.

:func:`nasviz.supernet.convert` works on a *structural copy* of the user's model: new module
objects holding the user's very parameters and buffers (nothing copied). In that copy the class
of every layer that takes part in an elastic dimension is swapped for a subclass defined here,
whose ``forward`` keeps only the active subnet's channels (``index_select`` along the sliced
dimensions; with every channel kept it reads the parameters as they are, so the largest subnet
computes exactly what the user's model computes). Containers with elastic depth become an
:class:`ElasticSequential` / :class:`ElasticModuleList` that run or yield only their first
``depth`` children. The user's own modules are never touched.

Which channels are active comes from a context variable the supernet sets for the duration of
its forward (:data:`ACTIVE_PLAN`), so concurrent forwards in other threads each read their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVE_PLAN",
    "ELASTIC_CLASSES",
    "ElasticBatchNormBase",
    "ElasticModuleList",
    "ElasticSequential",
    "Selection",
    "elastic_class",
    "make_elastic",
    "register_moe_classes",
    "shrink_module",
    "take",
]

#: param name -> ((dim, kept indices), ...): the sliced dimensions of each parameter/buffer.
Selection = Mapping[str, tuple[tuple[int, torch.Tensor], ...]]

#: what the converted supernet whose forward is running in this context needs (an object with
#: ``select``, ``depth``, ``collect`` and ``stats``; see ``ConvertedSupernet.forward``), or None.
ACTIVE_PLAN: ContextVar[Any] = ContextVar("nasviz_converted_plan", default=None)


def _select(active: Any, name: str) -> tuple[tuple[int, torch.Tensor], ...]:
    return () if active is None else active.select.get(name, ())


def take(module: nn.Module, attr: str) -> torch.Tensor | None:
    """``module.<attr>`` restricted to the active subnet's channels (the tensor itself when the
    subnet keeps all of them; the subnet's prepared copy when the forward has a store, see
    :mod:`nasviz.supernet._prepared`)."""
    active = ACTIVE_PLAN.get()
    if active is not None and active.prepared is not None:  # one dict look-up per call
        return active.prepared.get((module, attr))[0]  # (a kept-whole tensor is itself)
    tensor = getattr(module, attr)
    if tensor is None:
        return None
    select = _select(active, f"{module._nasviz_name}.{attr}")
    if not select:
        return tensor
    for dim, idx in select:
        tensor = tensor.index_select(dim, idx.to(tensor.device))
    return tensor


class _Sliced:
    """What a prepared store asks an elastic layer for: ``slices(attr)``, the sliced tensor."""

    def slices(self, attr: str) -> tuple[torch.Tensor | None]:
        tensor = getattr(self, attr)
        for dim, idx in _select(ACTIVE_PLAN.get(), f"{self._nasviz_name}.{attr}"):
            tensor = tensor.index_select(dim, idx.to(tensor.device))
        return (tensor,)


def _kept(module: nn.Module, attr: str, dim: int) -> int | None:
    """How many entries along ``dim`` of ``module.<attr>`` the active subnet keeps (None: all)."""
    for d, idx in _select(ACTIVE_PLAN.get(), f"{module._nasviz_name}.{attr}"):
        if d == dim:
            return int(idx.numel())
    return None


class _ElasticLinear(_Sliced, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., kept in) -> (..., kept out)
        return F.linear(x, take(self, "weight"), take(self, "bias"))


class _ElasticConv(_Sliced, nn.modules.conv._ConvNd):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, kept in, *spatial) -> (B, kept out, *spatial')
        weight, bias = take(self, "weight"), take(self, "bias")
        groups = self.groups
        if groups > 1:  # depthwise (grouped convs are never elastic): one group per channel
            groups = weight.shape[0]
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(self.kernel_size)]
        if self.padding_mode != "zeros":
            pad = self._reversed_padding_repeated_twice
            x = F.pad(x, pad, mode=self.padding_mode)
            return conv(x, weight, bias, self.stride, 0, self.dilation, groups)
        return conv(x, weight, bias, self.stride, self.padding, self.dilation, groups)


class ElasticBatchNormBase(_Sliced, nn.modules.batchnorm._BatchNorm):
    """Batch norm over the kept channels; re-calibrated statistics of a subnet when it has them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, kept C, ...) -> same shape
        self._check_input_dim(x)
        active = ACTIVE_PLAN.get()
        if active is not None and active.collect is not None:  # a re-calibration pass
            c = x.shape[1]
            dims = [d for d in range(x.ndim) if d != 1]
            acc = active.collect.setdefault(self._nasviz_name, [0, 0.0, 0.0])
            acc[0] += x.numel() // c
            acc[1] = acc[1] + x.sum(dims).double()
            acc[2] = acc[2] + (x * x).sum(dims).double()
            return F.batch_norm(
                x, None, None, take(self, "weight"), take(self, "bias"), True, 0.0, self.eps
            )
        stats = (
            None if active is None or active.stats is None else active.stats.get(self._nasviz_name)
        )
        if stats is not None and not self.training:  # the subnet's re-calibrated statistics
            mean, var = stats
            return F.batch_norm(
                x, mean, var, take(self, "weight"), take(self, "bias"), False, 0.0, self.eps
            )
        if _kept(self, "weight", 0) is None and _kept(self, "running_mean", 0) is None:
            return super().forward(x)  # every channel: torch's own code, buffers updated in place
        momentum = 0.0 if self.momentum is None else self.momentum
        use_batch = self.training or self.running_mean is None
        mean, var = take(self, "running_mean"), take(self, "running_var")
        out = F.batch_norm(
            x,
            mean if not self.training or self.track_running_stats else None,
            var if not self.training or self.track_running_stats else None,
            take(self, "weight"),
            take(self, "bias"),
            use_batch,
            momentum,
            self.eps,
        )
        if self.training and self.track_running_stats and mean is not None:
            with torch.no_grad():  # write the kept channels' updated statistics back
                for attr, new in (("running_mean", mean), ("running_var", var)):
                    for dim, idx in _select(active, f"{self._nasviz_name}.{attr}"):
                        getattr(self, attr).index_copy_(dim, idx.to(new.device), new)
        return out


#: torch layer class -> the elastic subclass its copies become (exact classes only).
ELASTIC_CLASSES: dict[type, type] = {}
for _base in (nn.Linear,):
    ELASTIC_CLASSES[_base] = _ElasticLinear
for _base in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    ELASTIC_CLASSES[_base] = type(f"_Elastic{_base.__name__}", (_ElasticConv, _base), {})
for _base in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
    ELASTIC_CLASSES[_base] = type(f"_Elastic{_base.__name__}", (ElasticBatchNormBase, _base), {})


class _ElasticConv1D(_Sliced, nn.Module):
    """Hugging Face's GPT-2 style ``Conv1D`` (a Linear whose weight is stored ``(in, out)``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., kept in) -> (..., kept out)
        weight, bias = take(self, "weight"), take(self, "bias")  # (in, out), (out,)
        out = torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight)
        return out.view(*x.shape[:-1], weight.shape[1])


def _sliced_param(module: nn.Module, name: str) -> torch.Tensor:
    """Parameter ``name`` of ``module`` restricted to the active subnet's entries."""
    tensor = module._parameters[name]
    for dim, idx in _select(ACTIVE_PLAN.get(), f"{module._nasviz_name}.{name}"):
        tensor = tensor.index_select(dim, idx.to(tensor.device))
    return tensor


class _ElasticRouter:
    """A Hugging Face MoE router (``weight`` (E, D), ``num_experts``, ``top_k``) whose own
    forward, reading these attributes, scores only the subnet's experts and picks its top-k
    (numbered among the kept experts, as the elastic expert stack numbers them)."""

    @property
    def weight(self) -> torch.Tensor:
        return _sliced_param(self, "weight")

    @property
    def num_experts(self) -> int:
        return int(_sliced_param(self, "weight").shape[0])

    @num_experts.setter
    def num_experts(self, value: int) -> None:
        self.__dict__["num_experts"] = value

    @property
    def top_k(self) -> int:
        active, full = ACTIVE_PLAN.get(), self.__dict__["top_k"]
        k = full if active is None else active.top_k.get(self._nasviz_name, full)
        return min(k, self.num_experts)

    @top_k.setter
    def top_k(self, value: int) -> None:
        self.__dict__["top_k"] = value


class _ElasticExpertStack:
    """A Hugging Face expert stack (``gate_up_proj`` (E, 2I, D), ``down_proj`` (E, D, I),
    ``num_experts``) whose own forward sees only the subnet's experts."""

    @property
    def gate_up_proj(self) -> torch.Tensor:
        return _sliced_param(self, "gate_up_proj")

    @property
    def down_proj(self) -> torch.Tensor:
        return _sliced_param(self, "down_proj")

    @property
    def num_experts(self) -> int:
        return int(_sliced_param(self, "down_proj").shape[0])

    @num_experts.setter
    def num_experts(self, value: int) -> None:
        self.__dict__["num_experts"] = value


def register_moe_classes(router: type, experts: type) -> None:
    """Elastic subclasses for a Hugging Face MoE family's router and expert-stack classes."""
    for cls, mixin in ((router, _ElasticRouter), (experts, _ElasticExpertStack)):
        if cls not in ELASTIC_CLASSES:
            ELASTIC_CLASSES[cls] = type(f"_Elastic{cls.__name__}", (mixin, cls), {})


def _is_hf_conv1d(cls: type) -> bool:
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers.")


def elastic_class(cls: type) -> type | None:
    """The elastic subclass copies of layer class ``cls`` become (None: convert cannot slice
    it). Hugging Face's ``Conv1D`` gets one on first use, so transformers is imported only by
    the models that have it."""
    if cls not in ELASTIC_CLASSES and _is_hf_conv1d(cls):
        ELASTIC_CLASSES[cls] = type("_ElasticHFConv1D", (_ElasticConv1D, cls), {})
    return ELASTIC_CLASSES.get(cls)


def _depth(container: nn.Module) -> int:
    active = ACTIVE_PLAN.get()
    n = len(container._modules)
    return n if active is None else active.depth.get(container._nasviz_name, n)


class ElasticSequential(nn.Sequential):
    """An ``nn.Sequential`` running only its first ``depth`` children in a subnet."""

    def forward(self, x: Any) -> Any:
        for i, module in enumerate(self._modules.values()):
            if i >= _depth(self):
                break
            x = module(x)
        return x


class ElasticModuleList(nn.ModuleList):
    """An ``nn.ModuleList`` whose iteration yields only its first ``depth`` children in a
    subnet (the user's ``for layer in self.layers`` loop runs fewer layers)."""

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(list(self._modules.values())[: _depth(self)])

    def __getitem__(self, idx: int | slice) -> Any:
        # a slice from the front (Hugging Face's ``self.layers[: config.num_hidden_layers]``)
        # is the same run of layers: it runs the subnet's depth too
        item = super().__getitem__(idx)
        if isinstance(item, ElasticModuleList):
            front = idx.start in (None, 0) and idx.step in (None, 1)
            item._nasviz_name = self._nasviz_name if front else f"{self._nasviz_name}[{idx}]"
        return item


def make_elastic(module: nn.Module, name: str) -> None:
    """Turns a copied layer or container into its elastic subclass (in place; the copy only)."""
    if type(module) is nn.Sequential:
        module.__class__ = ElasticSequential
    elif type(module) is nn.ModuleList:
        module.__class__ = ElasticModuleList
    else:
        module.__class__ = elastic_class(type(module))
    module._nasviz_name = name


def shrink_module(module: nn.Module, sizes: Mapping[str, tuple[int, ...]]) -> None:
    """Updates a shrunk layer's size attributes to its new tensors (``sizes``: attr -> shape)."""
    weight = sizes.get("weight")
    if isinstance(module, nn.Linear) and weight is not None:
        module.out_features, module.in_features = weight
    elif _is_hf_conv1d(type(module)) and weight is not None:
        module.nx, module.nf = weight  # weight: (in, out)
    elif isinstance(module, nn.modules.conv._ConvNd) and weight is not None:
        depthwise = module.groups > 1
        module.out_channels = weight[0]
        module.in_channels = weight[0] if depthwise else weight[1] * module.groups
        if depthwise:
            module.groups = weight[0]
    elif "gate_up_proj" in sizes or (
        "weight" in sizes and isinstance(getattr(module, "top_k", None), int)
    ):
        # a Hugging Face expert stack or router: E experts kept (top-k capped at E)
        kept = (sizes.get("gate_up_proj") or sizes["weight"])[0]
        module.num_experts = kept
        if isinstance(getattr(module, "top_k", None), int):
            module.top_k = min(module.top_k, kept)
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        shape = weight or sizes.get("running_mean")
        if shape is not None:
            module.num_features = shape[0]
