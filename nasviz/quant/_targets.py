"""Which weights of a model quantize, under which names, in which blocks.

A *layer* is one weight matrix quantized as a unit, named like the module that holds it:

* ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (supernets' elastic layers included): ``weight``,
  one scale per output channel;
* Hugging Face ``Conv1D`` (GPT-2): ``weight`` stored ``(in, out)``, one scale per output column;
* stacked experts (a module with ``num_experts`` and 3-D parameters whose first dimension is
  the expert, as Mixtral, Qwen-MoE and OLMoE store them in transformers 5): each expert's slice
  is its own layer, named ``<module>.<parameter>.<expert>``, one scale per row.

A layer's *block* is the first module on its path that is an element of a ``ModuleList``,
``Sequential`` or ``ModuleDict`` and is not itself one (a transformer block, an inverted-residual
block, one element of an MLP's layer list); a layer outside any such container is its own
block. Weights shared by several modules (tied embeddings) are never quantized.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils import parametrize

from nasviz.errors import ConfigError

__all__ = ["Target", "find_targets", "select"]

_CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


class Target(NamedTuple):
    """One quantizable weight.

    Attributes:
        name: the layer's name (module path, or ``<module>.<parameter>.<expert>``).
        module_name: path of the module holding the parameter.
        module: that module.
        attr: the parameter's name on it.
        expert: index into a stacked experts parameter, else None.
        reduce: dimensions (of the layer's own weight) that share one scale.
        kind: ``"Linear"``, ``"Conv1d"``, ``"Conv2d"``, ``"Conv3d"``, ``"Conv1D"`` or ``"experts"``.
        shape: the layer's weight shape.
        block: the layer's block (see the module docstring).
    """

    name: str
    module_name: str
    module: nn.Module
    attr: str
    expert: int | None
    reduce: tuple[int, ...]
    kind: str
    shape: tuple[int, ...]
    block: str

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def _weight(module: nn.Module, attr: str) -> tuple[int, torch.Tensor]:
    """The identity of a weight's storage (shared weights share it) and its effective value."""
    if parametrize.is_parametrized(module, attr):
        with torch.no_grad():
            return id(module.parametrizations[attr].original), getattr(module, attr)
    w = getattr(module, attr)
    return id(w), w


def _class_name(module: nn.Module) -> str:
    """The module's class name (a parametrized module's is its original class's)."""
    cls = type(module)
    return cls.__bases__[0].__name__ if parametrize.is_parametrized(module) else cls.__name__


def _block(model: nn.Module, path: str) -> str:
    parts = path.split(".") if path else []
    module, parent_is_container = model, isinstance(model, _CONTAINERS)
    for i, part in enumerate(parts):
        module = module._modules[part]
        if parent_is_container and not isinstance(module, _CONTAINERS):
            return ".".join(parts[: i + 1])
        parent_is_container = isinstance(module, _CONTAINERS)
    return path


def _stacked(module: nn.Module) -> list[str]:
    n = getattr(module, "num_experts", None)
    if not isinstance(n, int) or isinstance(module, nn.Linear):
        return []
    names = [name for name, _ in module.named_parameters(recurse=False)]
    if parametrize.is_parametrized(module):
        names += list(module.parametrizations.keys())
    return [
        name
        for name in names
        if _weight(module, name)[1].dim() == 3 and _weight(module, name)[1].shape[0] == n
    ]


def find_targets(model: nn.Module) -> dict[str, Target]:
    """Every quantizable layer of ``model`` by name, in module order (see the module docstring)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"expected a torch nn.Module, got {type(model).__name__}")
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    out: dict[str, Target] = {}
    for path, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue
        kind = reduce = None
        if isinstance(module, nn.Linear):
            kind, reduce = "Linear", (1,)
        elif isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            kind = f"Conv{module.weight.dim() - 2}d"
            reduce = tuple(range(1, module.weight.dim()))
        elif _class_name(module) == "Conv1D" and hasattr(module, "nf"):
            kind, reduce = "Conv1D", (0,)
        if kind is not None:
            key, w = _weight(module, "weight")
            if uses[key] == 1 and w.is_floating_point() and w.dim() >= 2:
                out[path] = Target(
                    path,
                    path,
                    module,
                    "weight",
                    None,
                    reduce,
                    kind,
                    tuple(w.shape),
                    _block(model, path),
                )
            continue
        for attr in _stacked(module):
            key, w = _weight(module, attr)
            if uses[key] != 1 or not w.is_floating_point():
                continue
            for j in range(w.shape[0]):
                name = f"{path}.{attr}.{j}" if path else f"{attr}.{j}"
                out[name] = Target(
                    name,
                    path,
                    module,
                    attr,
                    j,
                    (1,),
                    "experts",
                    tuple(w.shape[1:]),
                    _block(model, path),
                )
    return out


def _patterns(value: str | Iterable[str] | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(p, str) for p in items):
        raise ConfigError(f"{what} must be layer names or glob patterns (strings), got {value!r}")
    return items


def select(
    targets: Mapping[str, Target],
    include: str | Iterable[str] | None,
    exclude: str | Iterable[str] | None,
) -> dict[str, Target]:
    """The targets whose names match a pattern of ``include`` (all when None) and none of
    ``exclude`` (glob patterns, e.g. ``"blocks.*.attn.*"``). A pattern that matches no layer is
    a ConfigError that lists the layers."""
    inc, exc = _patterns(include, "include"), _patterns(exclude, "exclude")
    names = list(targets)
    for what, patterns in (("include", inc), ("exclude", exc)):
        for p in patterns or ():
            if not fnmatch.filter(names, p):
                shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
                raise ConfigError(
                    f"{what} pattern {p!r} matches no quantizable layer; layers: {shown}"
                )
    return {
        n: t
        for n, t in targets.items()
        if (inc is None or any(fnmatch.fnmatchcase(n, p) for p in inc))
        and not any(fnmatch.fnmatchcase(n, p) for p in exc or ())
    }
