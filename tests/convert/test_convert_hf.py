"""convert on Hugging Face models built from small configs (nothing downloaded)."""

from __future__ import annotations

import torch
import transformers
from convert_models import state_hash

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


def test_gpt2_converts_directly_with_elastic_depth_and_says_what_stays_static():
    cfg = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=16)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    before = state_hash(model)
    x = torch.randint(0, 50, (2, 6))
    sn = convert(model, x)  # Hugging Face outputs and attention trace through the adapters
    assert state_hash(model) == before
    assert sn.space.names == ("depth.0",)
    report = sn.report().set_index("module")
    assert "Conv1D" in report.loc["transformer.h.0.attn.c_attn", "why"]
    assert not report.loc["transformer.h.0.attn.c_attn", "elastic"]
    logits = lambda out: out.logits if hasattr(out, "logits") else out  # noqa: E731
    with torch.no_grad():
        assert (logits(sn(x)) - model(x).logits).abs().max().item() <= 1e-6
        small = sn.smallest()
        with sn.subnet(small):
            inside = logits(sn(x))
        exported = sn.export(small).eval()
        assert len(exported.transformer.h) == 1
        assert (logits(exported(x)) - inside).abs().max().item() <= 1e-6


def test_a_shallower_hugging_face_export_saves_and_loads_with_its_own_config(tmp_path):
    """The export's config says its layer count: save_pretrained / from_pretrained give the
    same logits and generate() works; the user's model and config are untouched."""
    cfg = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=3, n_head=2, n_positions=16)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    x = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    sn = convert(model, x)
    small = sn.export(sn.smallest()).eval()
    assert len(small.transformer.h) == 1 and small.config.n_layer == 1
    assert model.config.n_layer == 3 and len(model.transformer.h) == 3
    small.save_pretrained(tmp_path / "small")
    again = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "small").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x).logits, small(x).logits, rtol=0, atol=0)
    out = again.generate(x[:1, :3], max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 6)
    bert = _bert()
    sb = convert(bert, x)
    depth = next(
        n for n, d in sb.dims.items() if getattr(d, "container", "") == "bert.encoder.layer"
    )
    two = sb.export(sb.largest().replace(**{depth: 2})).eval()
    assert two.config.num_hidden_layers == 2 and bert.config.num_hidden_layers == 3
    two.save_pretrained(tmp_path / "bert")
    loaded = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "bert").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, two(x).logits, rtol=0, atol=0)
