"""The table: how each supported Hugging Face model family lays out its transformer blocks.

One :class:`Family` row per family says, as data, where a block's parts are (module paths
relative to one layer of the layer list), which config keys hold the sizes, and which module
attributes carry head counts. Code that walks a model (:mod:`nasviz.hf._adapter`) reads these
rows; nothing anywhere branches on a model's name.

Written against the transformers 5 module layout (fused ``gate_up_proj`` / ``down_proj``
expert tensors, ``*TopKRouter`` routers, ``q_proj`` ... in ViT). What a family's config cannot
express is stated in the row (``heads_unsaveable``), so errors and docs can say so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILIES", "Family", "family_of_model_type", "supported_model_types"]

#: Module attribute -> quantity it holds after head pruning: ``"heads"`` (query heads),
#: ``"kv_heads"``, ``"groups"`` (query heads per key/value head) or ``"width"`` (heads x head_dim).
HeadAttrs = tuple[tuple[str, str], ...]

_BERT_HEADS = (
    "transformers 5 BERT-style configs derive the head width from hidden_size / "
    "num_attention_heads and have no pruned_heads, so fewer heads of the same width cannot be "
    "written into the config"
)
_GPT2_HEADS = (
    "transformers 5 GPT-2 derives the head width from n_embd / n_head and has no pruned_heads, "
    "so fewer heads of the same width cannot be written into the config"
)


@dataclass(frozen=True)
class Family:
    """Where one model family keeps the parts of its transformer blocks.

    Paths are relative to one layer (an element of ``layers``, itself relative to the model's
    ``base_model``); ``q``/``k``/``v`` equal to one another mean one packed projection whose
    outputs are ``[q | k | v]`` (GPT-2's ``c_attn``).

    Attributes:
        name: the family's name in messages.
        model_types: ``config.model_type`` values this row serves.
        layers: the block list, relative to the base model.
        attention: the attention module (it holds the head-count attributes).
        q, k, v: projections producing queries, keys, values (output features).
        o: the output projection (input features = heads x head_dim).
        head_dim_attr: attribute of the attention module that holds the head width.
        head_attrs: module attributes to update after head pruning (see ``HeadAttrs``).
        ffn_in: projections producing the FFN's hidden neurons (gate and up, or up).
        ffn_out: the projection consuming them (down).
        moe: the sparse-MoE block (router ``.gate`` with a ``weight`` (E, D); experts
            ``.experts`` with ``gate_up_proj`` (E, 2I, D) and ``down_proj`` (E, D, I)).
        heads_key, kv_heads_key, head_dim_key: config keys of the head counts (None: the
            family has no such key); ``head_dim_key`` None means fewer heads of the same width
            cannot be saved.
        ffn_key: config key of the FFN width.
        experts_key: config key of the expert count; ``top_k_key`` of experts per token.
        heads_unsaveable: why head pruning cannot round-trip through the config ("" if it can).
        heads_unprunable: why heads cannot be removed at all ("" if they can).
        index_flags: config flags whose behaviour depends on a layer's index (dropping layers
            would renumber it).
    """

    name: str
    model_types: tuple[str, ...]
    layers: str
    attention: str
    q: str
    k: str
    v: str
    o: str
    head_dim_attr: str
    head_attrs: HeadAttrs
    ffn_in: tuple[str, ...] = ()
    ffn_out: str | None = None
    moe: str | None = None
    heads_key: str = "num_attention_heads"
    kv_heads_key: str | None = "num_key_value_heads"
    head_dim_key: str | None = "head_dim"
    ffn_key: str | None = "intermediate_size"
    experts_key: str | None = None
    top_k_key: str | None = None
    heads_unsaveable: str = ""
    heads_unprunable: str = ""
    index_flags: tuple[str, ...] = ()

    @property
    def packed_qkv(self) -> bool:
        return self.q == self.k == self.v


_DECODER = {  # Llama-style decoders: q/k/v/o_proj, grouped-query attention, gated MLP
    "layers": "layers",
    "attention": "self_attn",
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "head_dim_attr": "head_dim",
    "head_attrs": (("num_key_value_groups", "groups"),),
    "ffn_in": ("mlp.gate_proj", "mlp.up_proj"),
    "ffn_out": "mlp.down_proj",
}

_MOE = {**_DECODER, "moe": "mlp", "top_k_key": "num_experts_per_tok"}

#: The Hugging Face model families nasviz.hf adapts (layers, attention, FFN, experts, config keys);
#: adapter_for(model) picks the first whose model types match.
FAMILIES: tuple[Family, ...] = (
    Family(
        "BERT",
        ("bert", "roberta"),
        layers="encoder.layer",
        attention="attention.self",
        q="attention.self.query",
        k="attention.self.key",
        v="attention.self.value",
        o="attention.output.dense",
        head_dim_attr="attention_head_size",
        head_attrs=(("num_attention_heads", "heads"), ("all_head_size", "width")),
        ffn_in=("intermediate.dense",),
        ffn_out="output.dense",
        kv_heads_key=None,
        head_dim_key=None,
        heads_unsaveable=_BERT_HEADS,
    ),
    Family(
        "GPT-2",
        ("gpt2",),
        layers="h",
        attention="attn",
        q="attn.c_attn",
        k="attn.c_attn",
        v="attn.c_attn",
        o="attn.c_proj",
        head_dim_attr="head_dim",
        head_attrs=(("num_heads", "heads"), ("split_size", "width")),
        ffn_in=("mlp.c_fc",),
        ffn_out="mlp.c_proj",
        kv_heads_key=None,
        head_dim_key=None,
        ffn_key="n_inner",
        heads_unsaveable=_GPT2_HEADS,
        index_flags=("scale_attn_by_inverse_layer_idx",),
    ),
    Family("Llama", ("llama", "mistral", "qwen2"), **_DECODER),
    Family(
        "ViT",
        ("vit",),
        layers="layers",
        attention="attention",
        q="attention.q_proj",
        k="attention.k_proj",
        v="attention.v_proj",
        o="attention.o_proj",
        head_dim_attr="head_dim",
        head_attrs=(("num_attention_heads", "heads"),),
        ffn_in=("mlp.fc1",),
        ffn_out="mlp.fc2",
        kv_heads_key=None,
    ),
    Family(
        "Mixtral",
        ("mixtral",),
        **_MOE,
        experts_key="num_local_experts",
    ),
    Family(
        "Qwen-MoE",
        ("qwen2_moe", "qwen3_moe"),
        **_MOE,
        experts_key="num_experts",
    ),
    Family(
        "OLMoE",
        ("olmoe",),
        **_MOE,
        experts_key="num_experts",
        heads_unprunable=(
            "OLMoE's q_norm / k_norm normalize over all heads together, so removing a head "
            "changes every other head's output"
        ),
    ),
)


def supported_model_types() -> list[str]:
    """Every ``config.model_type`` nasviz has an adapter for, sorted."""
    return sorted(t for f in FAMILIES for t in f.model_types)


def family_of_model_type(model_type: str) -> Family | None:
    """The :class:`Family` row serving ``model_type``, or None."""
    return next((f for f in FAMILIES if model_type in f.model_types), None)
