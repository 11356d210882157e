"""Hugging Face models built from small configs (random weights, nothing downloaded): dict
batches train, perplexity is exp(mean token NLL), datasets.Dataset is read a batch at a time."""

from __future__ import annotations

import math

import datasets
import pytest
import torch
import torch.nn.functional as F
import transformers

from nasviz.errors import ConfigError
from nasviz.objectives import accuracy, perplexity
from nasviz.training import Accuracy, evaluate, infer_task, train

VOCAB = 48


def _llama():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config).eval()


def _gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4
    )
    return transformers.GPT2LMHeadModel(config).eval()


def _bert(labels: int = 3):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=labels,
        max_position_embeddings=32,
    )
    return transformers.BertForSequenceClassification(config)


def _token_batches(seed: int = 0):
    """Two batches of 3 sequences of 10 tokens; the second has right padding."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for padded in (False, True):
        ids = torch.randint(1, VOCAB, (3, 10), generator=g)
        mask = torch.ones_like(ids)
        if padded:
            mask[0, 7:] = 0
            mask[2, 4:] = 0
            ids[mask == 0] = 0
        batches.append({"input_ids": ids, "attention_mask": mask})
    return batches


@pytest.mark.parametrize("build", [_llama, _gpt2], ids=["llama", "gpt2"])
def test_perplexity_is_exp_of_the_mean_token_nll(build):
    model = build()
    batches = _token_batches()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for b in batches:
            logits = model(**b).logits  # (B, T, V)
            labels = b["input_ids"].clone()
            labels[b["attention_mask"] == 0] = -100
            pred, gold = logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1)
            nll += float(F.cross_entropy(pred, gold, ignore_index=-100, reduction="sum"))
            tokens += int((gold != -100).sum())
        hf_loss = float(model(**batches[0], labels=batches[0]["input_ids"]).loss)
    expected = math.exp(nll / tokens)
    assert perplexity(batches)(model) == pytest.approx(expected, rel=1e-5)
    # Hugging Face's own shifted loss agrees on the unpadded batch
    assert perplexity(batches[:1])(model) == pytest.approx(math.exp(hf_loss), rel=1e-5)
    assert infer_task(model, torch.zeros(1, 2, VOCAB), None, None) == "causal_lm"


def test_a_causal_lm_trains_on_input_ids_alone():
    model = _gpt2().train()
    pattern = torch.arange(10).repeat(6, 1) % 7 + 1  # a sequence it can learn
    data = [{"input_ids": pattern, "attention_mask": torch.ones_like(pattern)}] * 4
    before = perplexity(data)(model)
    run = train(model, data, epochs=5, lr=3e-3)
    assert run.run().state == "finished", run.traceback
    assert run.engine.task == "causal_lm"
    assert perplexity(data)(model) < before / 3


def test_a_dict_batch_bert_classifier_trains():
    model = _bert()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, VOCAB, (48, 8), generator=g)
    labels = torch.arange(48) % 3
    ids[:, 0] = labels + 1  # the first token gives the class away
    batches = [
        {
            "input_ids": ids[i : i + 16],
            "attention_mask": torch.ones(16, 8, dtype=torch.long),
            "labels": labels[i : i + 16],
        }
        for i in range(0, 48, 16)
    ]
    before = accuracy(batches)(model)
    run = train(model, batches, epochs=8, lr=3e-3)
    assert run.run().state == "finished", run.traceback
    assert run.engine.task == "classification"
    assert accuracy(batches)(model) > max(before, 90.0)


def test_a_hugging_face_dataset_trains_and_evaluates():
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(4, VOCAB, (40, 8), generator=g)
    label = (torch.arange(40) % 3).tolist()
    ids[:, 0] = torch.tensor(label) + 1
    table = datasets.Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": [[1] * 8] * 40,
            "label": label,
            "text": ["x"] * 40,
        }
    )
    model = _bert()
    run = train(model, table, epochs=6, batch_size=10, lr=3e-3)  # "label" -> "labels"; text dropped
    assert run.run().state == "finished", run.traceback
    scores = evaluate(model, table, [Accuracy()])
    assert scores["accuracy"] > 90.0
    with pytest.raises(ConfigError, match="labels range over 0..2 but the model has 2 outputs"):
        train(_bert(labels=2), table, epochs=1)
