"""Recovery after pruning a Hugging Face model: distillation from the unpruned model (the training
layer's ``recover``) wins back perplexity the pruning cost, on a model this test trains first."""

from __future__ import annotations

import copy

import torch
from hf_models import VOCAB, build, state_hash

from nasviz.objectives import perplexity
from nasviz.prune import Importance
from nasviz.training import recover, train


def _counting_sequences(n: int = 64, length: int = 12) -> dict[str, torch.Tensor]:
    """Sequences that count up from a random start (mod the vocabulary): learnable in a few
    dozen steps, so pruning has something to lose."""
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, VOCAB - 3, (n, 1), generator=g)
    ids = (start + torch.arange(length)) % (VOCAB - 3) + 3  # (n, length), no special tokens
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_recover_wins_back_what_pruning_a_trained_llama_cost():
    data = _counting_sequences()
    teacher = build("llama").train()
    run = train(teacher, data, epochs=10, batch_size=16, lr=1e-2, seed=0)
    assert run.run().state == "finished", run.traceback
    teacher.eval()
    ppl = perplexity(data)
    trained = ppl(teacher)
    assert trained < 2.0  # it learned to count (random weights: about VOCAB)

    plan = Importance.for_data(teacher, data).plan(
        head_sparsity=0.5, neuron_sparsity=0.75, drop_layers=1
    )
    student = plan.apply(copy.deepcopy(teacher))
    pruned = ppl(student)
    assert pruned > trained  # pruning cost something
    before = state_hash(teacher)

    run = recover(student, teacher, data, steps=30, batch_size=16, lr=1e-2, seed=0)
    assert run.run().state == "finished", run.traceback
    student.eval()
    recovered = ppl(student)
    assert recovered < pruned - 0.5 * (pruned - trained)  # at least half the loss won back
    assert state_hash(teacher) == before  # the teacher is never changed
    assert student.config.num_hidden_layers == 2  # still the pruned architecture
