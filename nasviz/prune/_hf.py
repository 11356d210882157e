"""Pruning Hugging Face models in place: attention heads, FFN neurons, whole layers.

The parts are found through :func:`nasviz.hf.adapter_for` (BERT / RoBERTa, GPT-2, Llama /
Mistral / Qwen2, ViT, and the attention of Mixtral / Qwen-MoE); the weights are sliced, the
attention modules' head-count attributes and the config are rewritten, so that
``save_pretrained`` then ``from_pretrained`` gives the same logits and ``generate()`` keeps
working with its key/value cache. Every request is checked and every new tensor computed
before the model changes: a refused call leaves it exactly as it was.

Heads and grouped-query attention. Query head ``h`` reads key/value head ``h // group``. A
layer may keep (a) whole groups — a key/value head with all its query heads — and (b) within
the kept groups the same number of query heads in every group, as ``repeat_kv`` needs; a key /
value head whose query heads are all gone goes with them. Anything else "breaks groups" and is
refused, naming the groups.

What configs can express (see :meth:`nasviz.hf.HFAdapter.limits`): one head count, one FFN
width and one expert count for all layers, and any subset of layers. So by default every layer
must keep the same number of heads (of key/value heads) and of neurons; BERT / RoBERTa / GPT-2
cannot store fewer heads at all (transformers 5 derives their head width from the model width
and has no ``pruned_heads``). ``in_memory=True`` prunes what the config cannot express anyway:
the model runs (and generates) in memory, but ``from_pretrained`` refuses the saved checkpoint
with a size mismatch — prune uniformly to save.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from nasviz.errors import ConfigError, check_int
from nasviz.hf import HFAdapter, adapter_for
from nasviz.hf._layers import AttentionBlock, Installer, keep_inputs, keep_outputs
from nasviz.prune._attention import head_columns

__all__ = [
    "StructurePlan",
    "prune_heads",
    "prune_layers",
    "prune_neurons",
    "prune_structure",
    "sync_config",
]


@dataclass(frozen=True)
class StructurePlan:
    """What to keep: query heads and FFN neurons per layer (layers not listed keep all), and
    which layers to drop. Indices are the model's before pruning.

    Build one by hand or with :meth:`nasviz.prune.Importance.plan`; look at it
    (:meth:`summary`), then :meth:`apply` it.
    """

    heads: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    neurons: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    drop: tuple[int, ...] = ()

    def apply(self, model: nn.Module, *, in_memory: bool = False) -> nn.Module:
        """Prunes ``model`` in place (see :func:`prune_structure`); returns it."""
        return prune_structure(model, self, in_memory=in_memory)

    def summary(self, model: nn.Module) -> pd.DataFrame:
        """One row per layer of ``model``: ``heads`` / ``heads_kept``, ``kv_heads`` /
        ``kv_heads_kept``, ``neurons`` / ``neurons_kept`` and ``dropped``."""
        adapter = adapter_for(model)
        rows = []
        for i in range(adapter.num_layers):
            a, f = adapter.attention(i), adapter.ffn(i)
            kept = self.heads.get(i)
            groups = a.kv_heads if kept is None else len({h // a.group for h in kept})
            rows.append(
                {
                    "layer": i,
                    "heads": a.heads,
                    "heads_kept": a.heads if kept is None else len(kept),
                    "kv_heads": a.kv_heads,
                    "kv_heads_kept": groups,
                    "neurons": 0 if f is None else f.neurons,
                    "neurons_kept": 0 if f is None else len(self.neurons.get(i, range(f.neurons))),
                    "dropped": i in self.drop,
                }
            )
        return pd.DataFrame(rows)


def _indices(name: str, values: Any, limit: int, what: str) -> list[int]:
    """Sorted distinct ints in 0..limit-1, at least one; ConfigError otherwise."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | torch.Tensor | range):
        raise ConfigError(f"{name} must be a list of {what} indices, got {values!r}")
    out = [
        check_int(f"{name} entry", v)
        for v in (values.tolist() if isinstance(values, torch.Tensor) else values)
    ]
    bad = sorted({v for v in out if not 0 <= v < limit})
    if bad:
        raise ConfigError(
            f"{name} lists {what} {bad} but there are only {limit} ({what} 0..{limit - 1})"
        )
    if len(set(out)) != len(out):
        raise ConfigError(f"{name} lists a {what} twice: {out}")
    if not out:
        raise ConfigError(f"{name} keeps no {what}; keep at least one (or drop the layer)")
    return sorted(out)


def _group_split(a: AttentionBlock, kept: list[int], name: str) -> tuple[list[int], list[int]]:
    """(kept query heads, kept key/value heads) under the grouped-query rule, or ConfigError."""
    r = a.group
    per_group = {g: [h for h in kept if h // r == g] for g in range(a.kv_heads)}
    sizes = {g: len(hs) for g, hs in per_group.items() if hs}
    if len(set(sizes.values())) > 1:
        layout = ", ".join(
            f"kv head {g}: query heads {g * r}-{g * r + r - 1}" for g in range(a.kv_heads)
        )
        raise ConfigError(
            f"{name} breaks grouped-query groups: it keeps {dict(sizes)} query heads of key/value heads "
            f"{sorted(sizes)} ({layout}); keep whole groups, and the same number of query heads in every "
            "kept group"
        )
    return kept, sorted(sizes)


def _head_installers(
    adapter: HFAdapter, a: AttentionBlock, q_heads: list[int], kv: list[int]
) -> list[Installer]:
    d = a.head_dim
    q_idx, kv_idx = head_columns(q_heads, d), head_columns(kv, d)
    rows: dict[int, tuple[nn.Module, list[torch.Tensor]]] = {}
    for proj, idx in ((a.q, q_idx), (a.k, kv_idx), (a.v, kv_idx)):
        rows.setdefault(id(proj.module), (proj.module, []))[1].append(proj.offset + idx)
    installers = [keep_outputs(m, torch.cat(parts)) for m, parts in rows.values()]
    installers.append(keep_inputs(a.o.module, a.o.offset + q_idx))
    values = {
        "heads": len(q_heads),
        "kv_heads": len(kv),
        "groups": len(q_heads) // len(kv),
        "width": len(q_heads) * d,
    }
    attrs = {attr: values[key] for attr, key in adapter.family.head_attrs}

    def set_attrs() -> None:
        for attr, value in attrs.items():
            setattr(a.module, attr, value)

    return [*installers, set_attrs]


def _layer_installer(adapter: HFAdapter, drop: list[int]) -> Installer:
    layers = adapter.layers()
    kept = [layers[i] for i in range(len(layers)) if i not in set(drop)]

    def install() -> None:
        for i in sorted(drop, reverse=True):
            del layers[i]  # ModuleList renumbers the rest
        for j, layer in enumerate(kept):
            for module in layer.modules():
                if isinstance(getattr(module, "layer_idx", None), int):
                    module.layer_idx = j  # the key/value cache slot

    return install


def _uniform(sizes: set, what: str, family: str, in_memory: bool) -> Any:
    """The one size every layer has, or None (in memory) / ConfigError when they differ."""
    if len(sizes) <= 1:
        return next(iter(sizes), None)
    if in_memory:
        return None
    raise ConfigError(
        f"the plan leaves layers with different {what} counts {sorted(sizes)}, but a {family} config has one "
        f"{what} count for every layer: keep the same number in every layer (Importance.plan(..., "
        "uniform=True)) to save the model, or pass in_memory=True (the model then runs in memory but "
        "from_pretrained refuses its checkpoint)"
    )


def prune_structure(model: nn.Module, plan: StructurePlan, *, in_memory: bool = False) -> nn.Module:
    """Prunes heads, FFN neurons and layers of a Hugging Face model in place (see the module
    docstring for the grouped-query rule and what configs can express).

    Args:
        model: a model of a family :func:`nasviz.hf.adapter_for` supports; changed in place.
        plan: what to keep (:class:`StructurePlan`; indices before pruning).
        in_memory: also prune what the config cannot express (per-layer sizes, BERT / GPT-2
            heads); the config then keeps its old value for those sizes.

    Returns:
        ``model``, pruned, with its config rewritten.

    Raises:
        ConfigError: a bad index, a plan that keeps nothing or breaks grouped-query groups, or
            sizes the config cannot express (without ``in_memory``); the model is unchanged.
    """
    adapter = adapter_for(model)
    family = adapter.family
    if not isinstance(plan, StructurePlan):
        raise ConfigError(f"plan must be a StructurePlan, got {type(plan).__name__}")
    drop = sorted({adapter.check_layer(i, "drop entry") for i in plan.drop}) if plan.drop else []
    if len(drop) >= adapter.num_layers:
        raise ConfigError(f"drop removes all {adapter.num_layers} layers; at least one must stay")
    kept_layers = [i for i in range(adapter.num_layers) if i not in set(drop)]
    installers: list[Installer] = []
    head_sizes, neuron_sizes = set(), set()
    heads_change = False
    for i, heads in dict(plan.heads).items():
        i = adapter.check_layer(i, "heads layer")
        if family.heads_unprunable:
            raise ConfigError(f"{family.name} heads cannot be pruned: {family.heads_unprunable}")
        a = adapter.attention(i)
        q, kv = _group_split(a, _indices(f"heads[{i}]", heads, a.heads, "heads"), f"heads[{i}]")
        if i not in drop:
            head_sizes.add((len(q), len(kv)))
        if len(q) < a.heads:
            heads_change = True
            installers += _head_installers(adapter, a, q, kv)
    for i, neurons in dict(plan.neurons).items():
        i = adapter.check_layer(i, "neurons layer")
        f = adapter.ffn(i)
        if f is None:
            raise ConfigError(
                f"layer {i} has no dense FFN (it is a sparse-MoE layer: prune its experts)"
            )
        idx = torch.as_tensor(_indices(f"neurons[{i}]", neurons, f.neurons, "neurons"))
        if i not in drop:
            neuron_sizes.add(len(idx))
        if len(idx) < f.neurons:
            installers += [keep_outputs(p.module, p.offset + idx) for p in f.inputs]
            installers.append(keep_inputs(f.output.module, idx))
    # layers the plan leaves alone keep their sizes, which the uniform rule counts too
    for i in kept_layers:
        if plan.heads and i not in plan.heads:
            a = adapter.attention(i)
            head_sizes.add((a.heads, a.kv_heads))
        f = adapter.ffn(i) if plan.neurons and i not in plan.neurons else None
        if f is not None:
            neuron_sizes.add(f.neurons)
    changes: dict[str, Any] = {}
    heads = _uniform(head_sizes, "head", family.name, in_memory)
    if heads is not None and heads_change:
        if adapter.limits()["heads"] == "uniform":
            changes.update(heads=heads[0], kv_heads=heads[1])
        elif not in_memory:
            raise ConfigError(
                f"{family.name} heads cannot be saved: {family.heads_unsaveable}. Prune FFN neurons and layers "
                "(its config expresses those), or pass in_memory=True to prune heads for in-memory use only"
            )
    neurons = _uniform(neuron_sizes, "FFN neuron", family.name, in_memory)
    if neurons is not None and plan.neurons:
        changes["ffn"] = neurons
    if drop:
        changes["layers"] = kept_layers
    config = adapter.rewrite_config(**changes) if changes else None
    if drop:
        installers.append(_layer_installer(adapter, drop))
    with torch.no_grad():
        for install in installers:
            install()
    if config is not None:
        adapter.set_config(config)
    return model


def sync_config(model: nn.Module) -> str | None:
    """Rewrites a Hugging Face model's config to the head counts and FFN width its modules now
    have (after in-memory pruning); returns None, or why the config cannot express them (the
    config then keeps its old values)."""
    adapter = adapter_for(model)
    config, family = adapter.config, adapter.family
    heads = {(a.heads, a.kv_heads) for a in map(adapter.attention, range(adapter.num_layers))}
    ffns = {f.neurons for f in map(adapter.ffn, range(adapter.num_layers)) if f is not None}
    now_heads = (
        getattr(config, family.heads_key),
        getattr(config, family.kv_heads_key or family.heads_key),
    )
    changes: dict[str, Any] = {}
    reasons = []
    if heads != {now_heads}:
        if len(heads) > 1:
            reasons.append(f"its layers have different (heads, key/value heads) {sorted(heads)}")
        else:
            changes.update(zip(("heads", "kv_heads"), next(iter(heads)), strict=True))
    if family.ffn_key and ffns and ffns != {getattr(config, family.ffn_key)}:
        if len(ffns) > 1:
            reasons.append(f"its layers have different FFN widths {sorted(ffns)}")
        else:
            changes["ffn"] = next(iter(ffns))
    try:
        if changes:
            adapter.set_config(adapter.rewrite_config(**changes))
    except ConfigError as exc:
        reasons.append(str(exc))
    return "; ".join(reasons) or None


def prune_heads(
    model: nn.Module, keep: Mapping[int, Sequence[int]], *, in_memory: bool = False
) -> nn.Module:
    """Keeps only query heads ``keep[layer]`` in each listed layer of a Hugging Face model, in
    place (grouped-query rule and config limits: see :mod:`nasviz.prune._hf`); returns it."""
    return prune_structure(model, StructurePlan(heads=_mapping("keep", keep)), in_memory=in_memory)


def prune_neurons(
    model: nn.Module, keep: Mapping[int, Sequence[int]], *, in_memory: bool = False
) -> nn.Module:
    """Keeps only FFN neurons ``keep[layer]`` in each listed layer, in place; returns the model."""
    return prune_structure(
        model, StructurePlan(neurons=_mapping("keep", keep)), in_memory=in_memory
    )


def prune_layers(model: nn.Module, drop: Sequence[int]) -> nn.Module:
    """Removes layers ``drop`` (indices before pruning) in place: the rest are renumbered, the
    config's layer count and per-layer lists follow; returns the model."""
    if isinstance(drop, str | bytes) or not isinstance(drop, Sequence | range):
        raise ConfigError(f"drop must be a list of layer indices, got {drop!r}")
    if not drop:
        raise ConfigError("drop lists no layer; name at least one layer to remove")
    return prune_structure(model, StructurePlan(drop=tuple(drop)))


def _mapping(name: str, value: Any) -> dict[int, tuple[int, ...]]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must map layer index -> indices to keep, got {value!r}")
    return {
        k: tuple(v) if isinstance(v, Sequence | range) and not isinstance(v, str | bytes) else v
        for k, v in value.items()
    }
