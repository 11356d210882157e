"""convert on Hugging Face models built from small configs (nothing downloaded)."""

from __future__ import annotations

import pytest
import torch
import transformers
from convert_models import state_hash
from hf_models import build, reloaded
from hypothesis import given, settings
from hypothesis import strategies as st
from subnet_threads import worst_thread_error

from nasviz.hf import adapter_for
from nasviz.objectives import count_macs
from nasviz.supernet import convert


def _bert():
    cfg = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg).eval()


def test_bert_layers_are_elastic_and_exports_equal_subnets():
    model = _bert()
    x = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    before = state_hash(model)
    sn = convert(model, x).eval()
    assert state_hash(model) == before
    depth = next(
        n for n, d in sn.dims.items() if getattr(d, "container", "") == "bert.encoder.layer"
    )
    assert sn.space.dims[depth] == (1, 2, 3)
    with torch.no_grad():
        assert (sn(x).logits - model(x).logits).abs().max().item() <= 1e-6
        for arch in [sn.smallest(), *sn.sample(0, n=3)]:
            with sn.subnet(arch):
                inside = sn(x).logits
            static = sn.export(arch)
            assert type(static) is type(model)
            assert len(static.bert.encoder.layer) == arch[depth]
            assert (static(x).logits - inside).abs().max().item() <= 1e-5
            assert sn.count_params(arch) == sum(p.numel() for p in static.parameters())


def test_gpt2_gets_elastic_depth_and_ffn_and_says_what_stays_static():
    cfg = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=16)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    before = state_hash(model)
    x = torch.randint(0, 50, (2, 6))
    sn = convert(model, x)  # Hugging Face outputs and attention trace through the adapters
    assert state_hash(model) == before
    report = sn.report().set_index("module")
    assert "attention heads left static" in report.loc["transformer.h.0.attn.c_attn", "why"]
    assert not report.loc["transformer.h.0.attn.c_attn", "elastic"]
    (ffn,) = report.loc["transformer.h.1.mlp.c_fc", "dims"]  # a Conv1D, sliced (in, out)
    assert report.loc["transformer.h.0.mlp.c_proj", "dims"] == (ffn,)
    assert "feed-forward width of every layer" in report.loc["transformer.h.0.mlp.c_fc", "why"]
    logits = lambda out: out.logits if hasattr(out, "logits") else out  # noqa: E731
    with torch.no_grad():
        assert (logits(sn(x)) - model(x).logits).abs().max().item() <= 1e-6
        small = sn.smallest()
        with sn.subnet(small):
            inside = logits(sn(x))
        exported = sn.export(small).eval()
        assert len(exported.transformer.h) == 1
        assert exported.transformer.h[0].mlp.c_fc.weight.shape == (16, 16)  # 64 -> 16 neurons
        assert exported.config.n_inner == 16 and model.config.n_inner is None
        assert (logits(exported(x)) - inside).abs().max().item() <= 1e-6


# family -> what becomes elastic: attention heads (where the config can say fewer) and FFN
ELASTIC_PARTS = {
    "llama": ("heads", "ffn"),  # grouped-query: 2 key/value heads of 2 query heads each
    "qwen2": ("heads", "ffn"),
    "vit": ("heads", "ffn"),
    "bert": ("ffn",),  # transformers 5 BERT derives the head size from the head count
}


def _input(name: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(2, 3, 8, 8, generator=g)
        if name == "vit"
        else torch.randint(3, 64, (2, 6), generator=g)
    )


def _converted(name: str):
    """(the model, an input, its converted supernet), checking convert left the model as is."""
    model = build(name)
    before = state_hash(model)
    x = _input(name)
    sn = convert(model, x).eval()
    assert state_hash(model) == before
    return model, x, sn


@pytest.mark.parametrize("name", sorted(ELASTIC_PARTS))
def test_heads_and_ffn_width_are_elastic_and_every_export_round_trips(name, tmp_path):
    """Heads (whole key/value heads with their query heads) and FFN neurons get one width per
    kind shared by every layer (a config holds one size for all layers): each export is the
    model's own class with a config that says its sizes, equal to the in-supernet forward,
    counted right, and identical after save_pretrained / from_pretrained."""
    model, x, sn = _converted(name)
    adapter = adapter_for(model)
    report = sn.report().set_index("module")
    kinds = {}
    for part, module in (
        ("heads", adapter.attention(0).q.name),
        ("ffn", adapter.ffn(0).output.name),
    ):
        if part in ELASTIC_PARTS[name]:
            (dim,) = report.loc[module, "dims"]
            kinds[part] = dim
            last = adapter.attention(2).q.name if part == "heads" else adapter.ffn(2).output.name
            assert report.loc[last, "dims"] == (dim,)  # the same dimension in every layer
        else:
            assert not report.loc[module, "elastic"]
            assert "the config cannot say fewer heads" in report.loc[module, "why"]
    out = lambda m: m(x).logits  # noqa: E731
    with torch.no_grad():
        assert (out(sn) - out(model)).abs().max().item() <= 1e-6
        for arch in [sn.smallest(), *sn.sample(3, n=3)]:
            with sn.subnet(arch):
                inside = out(sn)
            static = sn.export(arch).eval()
            assert type(static) is type(model)
            assert (out(static) - inside).abs().max().item() <= 1e-5
            assert sn.count_params(arch) == sum(p.numel() for p in static.parameters())
            shape = tuple(x.shape)  # attention's matmuls counted on both sides
            assert sn.count_macs(arch, shape) == count_macs(static, shape)
            got = adapter_for(static)
            sizes = {got.attention(i).heads for i in range(got.num_layers)}
            assert len(sizes) == 1 and got.config.num_attention_heads == sizes.pop()
            if "ffn" in kinds:
                assert {got.ffn(i).neurons for i in range(got.num_layers)} == {
                    got.config.intermediate_size
                }
            assert (out(reloaded(static)) - out(static)).abs().max().item() == 0.0
    small = sn.export(sn.smallest())
    assert (
        adapter_for(small).attention(0).heads < adapter.attention(0).heads or "heads" not in kinds
    )
    assert adapter_for(small).ffn(0).neurons == 12  # 48 neurons at width 0.25
    if name == "llama":
        assert small.config.num_key_value_heads == 1 and small.config.num_attention_heads == 2
        tokens = small.generate(x[:1, :3], max_new_tokens=3, do_sample=False, pad_token_id=0)
        assert tokens.shape == (1, 6)


def test_heads_and_ffn_can_be_left_static():
    model = build("llama")
    x = _input("llama")
    report = convert(model, x, heads=False).report().set_index("module")
    why = report.loc["model.layers.0.self_attn.q_proj", "why"]
    assert "attention heads left static (heads=False)" in why
    assert report.loc["model.layers.0.mlp.up_proj", "elastic"]
    report = convert(model, x, ffn=False).report().set_index("module")
    why = report.loc["model.layers.0.mlp.up_proj", "why"]
    assert "feed-forward width left static (ffn=False)" in why
    assert report.loc["model.layers.0.self_attn.q_proj", "elastic"]


@pytest.mark.parametrize("name", ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe"])
def test_experts_kept_and_top_k_are_elastic_and_exports_round_trip(name):
    """A fraction of every MoE layer's experts (the router scores only those) and the top-k,
    one dimension each for all layers: each export has fewer experts, a config that says so,
    and reloads with identical logits."""
    model, x, sn = _converted(name)
    adapter = adapter_for(model)
    block = adapter.experts(0)
    report = sn.report().set_index("module")
    (experts,) = report.loc[f"{block.name}.experts", "dims"]
    assert "experts kept" in report.loc[f"{block.name}.experts", "why"]
    assert report.loc[f"{block.name}.gate", "dims"] == (experts, "top_k.0")
    assert sn.space.dims["top_k.0"] == (1, 2)
    with torch.no_grad():
        assert (sn(x).logits - model(x).logits).abs().max().item() <= 1e-6
        for arch in [sn.smallest(), sn.largest().replace(**{experts: 0.5, "top_k.0": 1})]:
            with sn.subnet(arch):
                inside = sn(x).logits
            static = sn.export(arch).eval()
            kept = max(1, round(arch[experts] * block.num_experts))
            got = adapter_for(static).experts(0)
            assert (got.num_experts, got.top_k) == (kept, min(arch["top_k.0"], kept))
            assert got.experts.gate_up_proj.shape[0] == kept
            assert (static(x).logits - inside).abs().max().item() <= 1e-5
            assert sn.count_params(arch) == sum(p.numel() for p in static.parameters())
            assert sn.count_macs(arch, tuple(x.shape)) == count_macs(static, tuple(x.shape))
            assert (reloaded(static)(x).logits - static(x).logits).abs().max().item() == 0.0
    assert sn.canonical(sn.smallest().replace(**{"top_k.0": 2}))["top_k.0"] == 1  # 1 expert
    if name == "mixtral":
        small = sn.export(sn.smallest())
        assert small.config.num_local_experts == 1 and small.config.num_experts_per_tok == 1
        tokens = small.generate(x[:1, :3], max_new_tokens=3, do_sample=False, pad_token_id=0)
        assert tokens.shape == (1, 6)
        static = convert(model, x, experts=False).report().set_index("module")
        assert "experts left static (experts=False)" in static.loc[f"{block.name}.experts", "why"]


@pytest.fixture(scope="module")
def llama_net():
    model = build("llama")
    return convert(model, _input("llama")).eval(), model


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_llama_exports_equal_the_subnet_for_any_arch(llama_net, seed):
    sn, _ = llama_net
    x = _input("llama")
    arch = sn.sample(seed)
    with torch.no_grad():
        with sn.subnet(arch):
            inside = sn(x).logits
        assert (sn.export(arch)(x).logits - inside).abs().max().item() <= 1e-5


def test_threads_get_their_own_subnet_of_a_hugging_face_model(llama_net):
    sn, _ = llama_net
    x = _input("llama")
    archs = sn.sample(5, n=8)
    error = worst_thread_error(sn, x, archs, threads=4, repeats=2, output=lambda o: o.logits)
    assert error <= 1e-5
