"""HFAdapter: one Hugging Face model seen through its family's row of the table.

``adapter_for(model)`` picks the :class:`~nasviz.hf.Family` by ``config.model_type`` and
returns an :class:`HFAdapter` bound to the model: where its layers, attention (with heads and
key/value heads), FFN and experts are, example inputs, and config rewriting that refuses what
the model class cannot express. Reading never changes the model; :meth:`HFAdapter.set_config`
is the one method that does (it installs a config :meth:`HFAdapter.rewrite_config` made).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nasviz.errors import ConfigError, check_int
from nasviz.hf._families import Family, family_of_model_type, supported_model_types
from nasviz.hf._layers import (
    AttentionBlock,
    ExpertsBlock,
    FFNBlock,
    Projection,
    in_features,
    is_conv1d,
    out_features,
)

__all__ = ["HFAdapter", "adapter_for", "find_adapter"]


def _get(module: nn.Module, path: str) -> nn.Module | None:
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None


def _projection_layer(module: nn.Module | None) -> bool:
    return isinstance(module, nn.Linear) or (module is not None and is_conv1d(module))


class HFAdapter:
    """A Hugging Face model of a supported family, read through its :class:`Family` row.

    Args:
        model: a transformers ``PreTrainedModel`` (any head: ``*ForCausalLM``,
            ``*ForSequenceClassification``, the bare ``*Model``, ...).
        family: its row of :data:`nasviz.hf.FAMILIES`.

    Layers are numbered ``0 .. num_layers - 1`` in the order the model runs them. Every view
    (:meth:`attention`, :meth:`ffn`, :meth:`experts`) is read from the modules as they are now,
    so it reflects earlier pruning.

    Thread contract: an adapter only reads its model; build a new one after the model's
    structure changed in another thread.
    """

    def __init__(self, model: nn.Module, family: Family) -> None:
        self.model = model
        self.family = family
        base = getattr(model, "base_model", model)
        layers = _get(base, family.layers)
        if not isinstance(layers, nn.ModuleList):
            raise ConfigError(
                f"{type(model).__name__} (model_type {model.config.model_type!r}) has no layer list at "
                f"{family.layers!r}; nasviz.hf reads the transformers 5 module layout"
            )
        self._layers = layers
        names = {id(m): n for n, m in model.named_modules()}
        self._prefix = names[id(layers)]

    def __repr__(self) -> str:
        return f"HFAdapter({type(self.model).__name__}, family={self.family.name!r}, layers={self.num_layers})"

    # ---- where things are ------------------------------------------------------------------
    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def layers(self) -> nn.ModuleList:
        """The model's block list (the modules themselves)."""
        return self._layers

    def check_layer(self, i: Any, name: str = "layer") -> int:
        """``i`` as a layer index, or a ConfigError naming ``name`` and the allowed range."""
        i = check_int(name, i)
        if not 0 <= i < self.num_layers:
            raise ConfigError(
                f"{name} {i} is out of range: {type(self.model).__name__} has layers 0..{self.num_layers - 1}"
            )
        return i

    def layer_name(self, i: int) -> str:
        """Module path of layer ``i`` from the model's root (``"model.layers.3"``)."""
        i = self.check_layer(i)
        return f"{self._prefix}.{i}" if self._prefix else str(i)

    def _part(self, i: int, path: str) -> tuple[str, nn.Module | None]:
        return f"{self.layer_name(i)}.{path}", _get(self._layers[i], path)

    def attention(self, i: int) -> AttentionBlock:
        """Layer ``i``'s self-attention: projections, heads, key/value heads, head width."""
        f = self.family
        name, module = self._part(i, f.attention)
        parts = {p: self._part(i, getattr(f, p)) for p in ("q", "k", "v", "o")}
        if module is None or not all(_projection_layer(m) for _, m in parts.values()):
            raise ConfigError(
                f"layer {i} of {type(self.model).__name__} does not have the {f.name} attention layout "
                f"({f.q}, {f.k}, {f.v}, {f.o})"
            )
        head_dim = int(getattr(module, f.head_dim_attr))
        if f.packed_qkv:
            qkv_name, qkv = parts["q"]
            width = out_features(qkv) // 3
            q, k, v = (Projection(qkv_name, qkv, j * width, width) for j in range(3))
        else:
            q, k, v = (Projection(n, m, 0, out_features(m)) for n, m in (parts[p] for p in "qkv"))
        o_name, o = parts["o"]
        return AttentionBlock(
            i,
            name,
            module,
            q,
            k,
            v,
            Projection(o_name, o, 0, in_features(o)),
            q.width // head_dim,
            k.width // head_dim,
            head_dim,
        )

    def ffn(self, i: int) -> FFNBlock | None:
        """Layer ``i``'s dense FFN, or None where the layer has none (a sparse-MoE layer)."""
        f = self.family
        inputs = [self._part(i, p) for p in f.ffn_in]
        name, out = self._part(i, f.ffn_out) if f.ffn_out else ("", None)
        if not inputs or not all(_projection_layer(m) for _, m in [*inputs, (name, out)]):
            return None
        projections = tuple(Projection(n, m, 0, out_features(m)) for n, m in inputs)
        return FFNBlock(
            i, projections, Projection(name, out, 0, in_features(out)), in_features(out)
        )

    def experts(self, i: int) -> ExpertsBlock | None:
        """Layer ``i``'s sparse-MoE block, or None where the layer is dense."""
        if self.family.moe is None:
            return None
        name, block = self._part(i, self.family.moe)
        router, experts = getattr(block, "gate", None), getattr(block, "experts", None)
        if isinstance(experts, nn.ModuleList):
            raise ConfigError(
                f"{name} keeps its experts in a ModuleList (the transformers 4.x layout); nasviz compresses "
                "Hugging Face MoE models in the transformers 5 layout (fused gate_up_proj / down_proj)"
            )
        weight = getattr(router, "weight", None)
        gate_up = getattr(experts, "gate_up_proj", None)
        if not (
            isinstance(weight, torch.Tensor)
            and weight.dim() == 2
            and isinstance(gate_up, torch.Tensor)
            and gate_up.dim() == 3
        ):
            return None
        return ExpertsBlock(
            i,
            name,
            block,
            router,
            experts,
            int(weight.shape[0]),
            int(router.top_k),
            int(experts.down_proj.shape[-1]),
            bool(getattr(router, "norm_topk_prob", True)),
        )

    def moe_layers(self) -> list[int]:
        """Indices of the layers with a sparse-MoE block."""
        return [i for i in range(self.num_layers) if self.experts(i) is not None]

    # ---- inputs ------------------------------------------------------------------------------
    @property
    def input_name(self) -> str:
        """The model's main input keyword (``"input_ids"``, ``"pixel_values"``)."""
        return str(getattr(self.model, "main_input_name", "input_ids"))

    def example_input(self, batch: int = 2, length: int = 8, *, seed: int = 0) -> dict[str, Any]:
        """Keyword inputs for one forward: seeded random token ids ``(batch, length)``, or
        images ``(batch, channels, size, size)`` for vision models."""
        batch, length = check_int("batch", batch, 1), check_int("length", length, 1)
        g = torch.Generator().manual_seed(seed)
        if self.input_name == "pixel_values":
            size = int(self.config.image_size)
            shape = (batch, int(self.config.num_channels), size, size)
            return {"pixel_values": torch.randn(shape, generator=g)}
        vocab = int(self.config.vocab_size)
        return {self.input_name: torch.randint(0, vocab, (batch, length), generator=g)}

    # ---- config ---------------------------------------------------------------------------------
    def limits(self) -> dict[str, str]:
        """What the family's config can express, per kind of change (``"heads"``, ``"ffn"``,
        ``"layers"``, ``"experts"``): ``"uniform"`` (one size for every layer), ``"any"``, or
        ``"no: <reason>"``. No supported family stores per-layer sizes."""
        f = self.family
        heads = "uniform"
        if f.heads_unprunable:
            heads = f"no: {f.heads_unprunable}"
        elif f.head_dim_key is None:
            heads = f"no: {f.heads_unsaveable}"
        out = {"heads": heads, "ffn": "uniform" if f.ffn_key else "no: no FFN width key"}
        flags = [k for k in f.index_flags if getattr(self.config, k, False)]
        out["layers"] = (
            f"no: {', '.join(flags)} makes each layer depend on its index" if flags else "any"
        )
        out["experts"] = (
            "uniform" if f.experts_key and self.moe_layers() else "no: not an MoE model"
        )
        return out

    def rewrite_config(
        self,
        *,
        heads: int | None = None,
        kv_heads: int | None = None,
        ffn: int | None = None,
        layers: Sequence[int] | None = None,
        experts: int | None = None,
        top_k: int | None = None,
    ) -> Any:
        """A validated copy of the model's config with new sizes; the model is not changed.

        Args:
            heads, kv_heads: query and key/value heads per layer (head width unchanged).
            ffn: FFN neurons per layer.
            layers: indices of the layers kept, in order (their count becomes
                ``num_hidden_layers``; per-layer lists such as ``layer_types`` are sliced, which
                layers are sparse is written into ``mlp_only_layers``).
            experts: experts per MoE layer; ``top_k`` experts per token (default: the current
                top-k capped at ``experts``).

        Raises:
            ConfigError: the family's config cannot express the change (it says why and what
                it can express), or the config class rejects the result.
        """
        f, limits = self.family, self.limits()
        config = copy.deepcopy(self.config)
        if heads is not None or kv_heads is not None:
            if limits["heads"] != "uniform":
                raise ConfigError(
                    f"{f.name} heads cannot be saved in its config: {limits['heads'][4:]}"
                )
            head_dim = self.attention(0).head_dim
            if heads is not None:
                setattr(config, f.heads_key, check_int("heads", heads, 1))
            if kv_heads is not None and f.kv_heads_key:
                setattr(config, f.kv_heads_key, check_int("kv_heads", kv_heads, 1))
            setattr(config, f.head_dim_key, head_dim)  # explicit: never derived again
        if ffn is not None:
            if not f.ffn_key:
                raise ConfigError(f"{f.name} has no FFN width in its config")
            setattr(config, f.ffn_key, check_int("ffn", ffn, 1))
        if layers is not None:
            self._rewrite_layers(config, [self.check_layer(i, "layers entry") for i in layers])
        if experts is not None or top_k is not None:
            if not limits["experts"] == "uniform":
                raise ConfigError(f"{type(self.model).__name__} has no experts to rewrite")
            if experts is not None:
                setattr(config, f.experts_key, check_int("experts", experts, 1))
            k = getattr(config, f.top_k_key) if top_k is None else check_int("top_k", top_k, 1)
            setattr(config, f.top_k_key, min(k, getattr(config, f.experts_key)))
        try:
            type(config).from_dict(config.to_dict())
        except Exception as exc:
            reason = " ".join(str(exc).split())  # transformers' messages span lines
            raise ConfigError(
                f"{type(config).__name__} rejects these sizes ({type(exc).__name__}: {reason})"
            ) from exc
        return config

    def _rewrite_layers(self, config: Any, kept: list[int]) -> None:
        if not kept:
            raise ConfigError("at least one layer must stay")
        if len(set(kept)) != len(kept):
            raise ConfigError(f"layers lists a layer twice: {kept}")
        if kept != list(range(len(kept))) and self.limits()["layers"] != "any":
            raise ConfigError(
                f"{self.family.name} layers cannot be dropped here: {self.limits()['layers'][4:]} "
                "(dropping a layer renumbers the ones after it)"
            )
        old = getattr(config, "num_hidden_layers", self.num_layers)  # a shortened copy: more
        config.num_hidden_layers = len(kept)
        for key in ("layer_types", "mlp_layer_types"):
            value = getattr(config, key, None)
            if isinstance(value, list | tuple) and len(value) == old:
                setattr(config, key, [value[i] for i in kept])
        if hasattr(config, "mlp_only_layers") and hasattr(config, "decoder_sparse_step"):
            sparse = set(self.moe_layers())
            config.mlp_only_layers = [j for j, i in enumerate(kept) if i not in sparse]
            config.decoder_sparse_step = 1

    def set_config(self, config: Any) -> None:
        """Installs ``config``'s values into the model's own config object in place (modules
        hold references to it), for configs :meth:`rewrite_config` made."""
        target = self.config
        for key in config.to_dict():
            if key in ("transformers_version", "model_type") or not hasattr(config, key):
                continue
            value = getattr(config, key)
            if getattr(target, key, None) != value:
                setattr(target, key, copy.deepcopy(value))


def find_adapter(model: Any) -> HFAdapter | None:
    """An :class:`HFAdapter` for ``model``, or None when it is not a Hugging Face model of a
    supported family."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    family = family_of_model_type(model_type) if isinstance(model_type, str) else None
    if family is None or not isinstance(model, nn.Module):
        return None
    return HFAdapter(model, family)


def adapter_for(model: Any) -> HFAdapter:
    """The :class:`HFAdapter` of a Hugging Face model; a ConfigError listing the supported
    families when it is not one of them."""
    adapter = find_adapter(model)
    if adapter is None:
        config = getattr(model, "config", None)
        what = (
            f"model_type {config.model_type!r}"
            if isinstance(getattr(config, "model_type", None), str)
            else "not a Hugging Face model"
        )
        raise ConfigError(
            f"{type(model).__name__} ({what}) is not supported by nasviz.hf; supported "
            f"model types: {', '.join(supported_model_types())}"
        )
    return adapter
