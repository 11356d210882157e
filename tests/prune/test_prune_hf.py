"""Pruning Hugging Face models in place: heads (grouped-query rule), FFN neurons, layers; saved
and reloaded with save_pretrained / from_pretrained; refused requests change nothing."""

from __future__ import annotations

import pytest
import torch
from hf_models import DENSE, build, logits, reloaded, state_hash

from nasviz.errors import ConfigError
from nasviz.hf import adapter_for
from nasviz.objectives import count_params
from nasviz.prune import StructurePlan, prune_heads, prune_layers, prune_neurons, prune_structure

_SAVEABLE_HEADS = ("llama", "mistral", "qwen2", "vit")
_CAUSAL = ("gpt2", "llama", "mistral", "qwen2")


def _inputs(model, seed=1):
    return adapter_for(model).example_input(batch=2, length=7, seed=seed)


def _keep_heads(name):
    """Heads kept per layer: with GQA (2 groups of 2) query heads 0 and 2, one of each group;
    without, heads 1 and 3."""
    return (0, 2) if name in ("llama", "mistral", "qwen2") else (1, 3)


@pytest.mark.parametrize("name", list(DENSE))
def test_pruned_model_reloads_with_identical_logits_and_generates(name):
    model = build(name)
    plan = StructurePlan(
        heads={i: _keep_heads(name) for i in range(3)} if name in _SAVEABLE_HEADS else {},
        neurons={i: tuple(sorted((i + 2 * j) % 48 for j in range(24))) for i in range(3)},
        drop=(1,),
    )
    x = _inputs(model)
    assert plan.apply(model) is model
    config = model.config
    assert config.num_hidden_layers == 2
    assert getattr(config, "n_inner", None) == 24 or config.intermediate_size == 24
    if name in _SAVEABLE_HEADS:
        assert config.num_attention_heads == 2 and config.head_dim == 8
    again = reloaded(model)
    assert torch.equal(logits(again, x), logits(model, x))
    assert count_params(again) == count_params(model)
    if name in _CAUSAL:
        ids = x["input_ids"]
        out = again.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
        )
        with torch.no_grad():  # greedy decoding with the cache = argmax of full forwards
            full = again(out[:, :-1]).logits[:, ids.shape[1] - 1 :].argmax(-1)
        assert torch.equal(out[:, ids.shape[1] :], full)


def _masked_heads_reference(model, removed):
    """Logits with the removed query heads' output columns zeroed (masking, not removal)."""
    adapter = adapter_for(model)
    with torch.no_grad():
        for i, heads in removed.items():
            a = adapter.attention(i)
            for h in heads:
                a.o.columns()[:, h * a.head_dim : (h + 1) * a.head_dim] = 0.0
    return model


@pytest.mark.parametrize("name", list(DENSE))
def test_pruning_heads_equals_masking_them(name):
    model, masked = build(name), build(name)
    x = _inputs(model)
    keep = {0: (1, 3), 2: (0, 1)}  # GQA: layer 0 keeps one query head per group, layer 2 group 0
    removed = {i: [h for h in range(4) if h not in k] for i, k in keep.items()}
    reference = logits(_masked_heads_reference(masked, removed), x)
    prune_heads(model, keep, in_memory=True)  # different counts per layer: in memory only
    assert [adapter_for(model).attention(i).heads for i in range(3)] == [2, 4, 2]
    torch.testing.assert_close(logits(model, x), reference, rtol=1e-5, atol=1e-5)


def test_gqa_whole_groups_go_with_their_key_value_heads():
    model = build("llama")
    x = _inputs(model)
    masked = _masked_heads_reference(build("llama"), {i: [0, 1] for i in range(3)})
    prune_heads(model, {i: (2, 3) for i in range(3)})  # keep group 1 only: kv head 1
    attn = model.model.layers[0].self_attn
    assert attn.k_proj.weight.shape == (8, 32) and attn.num_key_value_groups == 2
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (2, 1)
    torch.testing.assert_close(logits(model, x), logits(masked, x), rtol=1e-5, atol=1e-5)
    assert torch.equal(logits(reloaded(model), x), logits(model, x))


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_pruning_neurons_equals_masking_them(name):
    model, masked = build(name), build(name)
    x = _inputs(model)
    keep = {0: tuple(range(0, 48, 3)), 1: tuple(range(30))}
    f_masked = adapter_for(masked)
    with torch.no_grad():
        for i, kept in keep.items():
            gone = [n for n in range(48) if n not in kept]
            f_masked.ffn(i).output.columns()[:, gone] = 0.0
    prune_neurons(model, keep, in_memory=True)
    assert [adapter_for(model).ffn(i).neurons for i in range(3)] == [16, 30, 48]
    torch.testing.assert_close(logits(model, x), logits(masked, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(DENSE))
def test_removing_a_layer_equals_skipping_it(name):
    model, skipped = build(name), build(name)
    x = _inputs(model)
    layer = adapter_for(skipped).layers()[1]
    layer.register_forward_hook(
        lambda m, args, kwargs, out: kwargs.get("hidden_states", args[0] if args else None),
        with_kwargs=True,
    )
    prune_layers(model, [1])
    assert len(adapter_for(model).layers()) == 2
    with torch.no_grad():
        expected = skipped(**x, use_cache=False).logits if name in _CAUSAL else logits(skipped, x)
        got = model(**x, use_cache=False).logits if name in _CAUSAL else logits(model, x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    kept = [m.layer_idx for m in model.modules() if isinstance(getattr(m, "layer_idx", None), int)]
    assert sorted(set(kept)) == ([0, 1] if kept else [])  # the cache slots are renumbered


def test_parameter_counts_equal_a_hand_computation():
    # Llama: hidden 32, head_dim 8, vocab 64, untied lm_head; 3 layers, GQA 4 query / 2 kv heads
    model = build("llama")
    d, v = 32, 64

    def llama_params(layers, q, kv, ffn):
        attention = d * q * 8 + 2 * d * kv * 8 + q * 8 * d  # q, k, v, o (no biases)
        mlp = 3 * d * ffn  # gate, up, down
        return 2 * v * d + d + layers * (attention + mlp + 2 * d)  # embed + lm_head + norms

    assert count_params(model) == llama_params(3, 4, 2, 48)
    plan = StructurePlan(
        heads={i: (2, 3) for i in range(3)},
        neurons={i: tuple(range(20)) for i in range(3)},
        drop=(0,),
    )
    plan.apply(model)
    assert count_params(model) == llama_params(2, 2, 1, 20)
    # GPT-2: biases everywhere, tied lm_head, learned positions (64)
    gpt2 = build("gpt2")

    def gpt2_params(layers, width, ffn):
        attention = 3 * (d * width + width) + width * d + d
        mlp = d * ffn + ffn + ffn * d + d
        return v * d + 64 * d + 2 * d + layers * (attention + mlp + 4 * d)

    assert count_params(gpt2) == gpt2_params(3, 32, 48)
    prune_structure(gpt2, StructurePlan(heads={i: (0, 1) for i in range(3)}), in_memory=True)
    prune_neurons(gpt2, {i: tuple(range(10)) for i in range(3)})
    assert count_params(gpt2) == gpt2_params(3, 16, 10)


def test_keeping_every_head_changes_nothing_even_where_heads_cannot_be_saved():
    model = build("bert")
    before = state_hash(model)
    prune_heads(model, {i: range(4) for i in range(3)})
    assert state_hash(model) == before


def test_plan_summary_says_what_stays():
    model = build("llama")
    plan = StructurePlan(heads={0: (0, 1)}, neurons={2: (1, 2, 3)}, drop=(1,))
    table = plan.summary(model)
    assert table.loc[0, ["heads_kept", "kv_heads_kept"]].tolist() == [2, 1]
    assert table.loc[2, "neurons_kept"] == 3 and table["dropped"].tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("name", "call", "message"),
    [
        (
            "llama",
            lambda m: prune_heads(m, {0: (0, 1, 2, 3, 4)}),
            r"heads\[0\] lists heads \[4\] but there are only 4",
        ),
        ("llama", lambda m: prune_heads(m, {0: ()}), r"heads\[0\] keeps no heads"),
        (
            "llama",
            lambda m: prune_heads(m, {i: (0, 1, 2) for i in range(3)}),
            "breaks grouped-query groups",
        ),
        (
            "llama",
            lambda m: prune_heads(m, {5: (0, 1)}),
            "heads layer 5 is out of range: .* layers 0..2",
        ),
        ("llama", lambda m: prune_layers(m, [3]), "drop entry 3 is out of range"),
        ("llama", lambda m: prune_layers(m, [0, 1, 2]), "at least one must stay"),
        ("llama", lambda m: prune_heads(m, {0: (0, 2)}), "different head counts .* in_memory=True"),
        ("llama", lambda m: prune_neurons(m, {0: (1, 1)}), "lists a neurons twice"),
        ("llama", lambda m: prune_neurons(m, {0: (0, 48)}), r"neurons\[0\] lists neurons \[48\]"),
        (
            "bert",
            lambda m: prune_heads(m, {i: (0, 1) for i in range(3)}),
            "BERT heads cannot be saved.*in_memory=True",
        ),
        (
            "gpt2",
            lambda m: prune_heads(m, {i: (0, 1) for i in range(3)}),
            "GPT-2 heads cannot be saved",
        ),
        (
            "olmoe",
            lambda m: prune_heads(m, {0: (0,)}, in_memory=True),
            "OLMoE heads cannot be pruned: .*q_norm",
        ),
        ("mixtral", lambda m: prune_neurons(m, {0: (0,)}), "sparse-MoE layer: prune its experts"),
        ("llama", lambda m: prune_heads(m, [0, 1]), "keep must map layer index"),
        ("llama", lambda m: prune_structure(m, {"heads": {}}), "plan must be a StructurePlan"),
    ],
)
def test_bad_requests_raise_and_leave_the_model_unchanged(name, call, message):
    model = build(name)
    before = state_hash(model)
    with pytest.raises(ConfigError, match=message):
        call(model)
    assert state_hash(model) == before
