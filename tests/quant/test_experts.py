"""Mixed-precision experts (MC-MoE): importance from routing, milp allocation, quantization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf
from quant_helpers import state_hash
from torch import nn

from nasviz.errors import ConfigError, MoEError
from nasviz.moe import MoE, RoutingRecorder
from nasviz.quant import (
    allocate_expert_bits,
    describe,
    expert_importance,
    quantize_experts,
)


class _Tokens(nn.Module):
    """Token ids -> embeddings -> one MoE layer -> logits (small and routable on purpose)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(32, 8)
        self.moe = MoE(8, 16, num_experts=4, top_k=1)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.moe(self.embed(tokens)).mean(1))  # (B, 3)


def _skewed():
    """A model whose router sends about 70/20/8/2 % of tokens to experts 0/1/2/3."""
    torch.manual_seed(0)
    model = _Tokens().eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.embed.weight.normal_(generator=g)
        model.embed.weight[:, 0] = 1.0  # every token has a constant feature
        model.moe.router.weight.zero_()
        shares = torch.tensor([0.70, 0.20, 0.08, 0.02])
        ids = torch.arange(32)
        owner = torch.bucketize(torch.rand(32, generator=g), shares.cumsum(0)).clamp_max(3)
        for e in range(4):  # expert e wins the tokens it owns through a one-hot code
            model.moe.router.weight[e, 1:] = 0.0
        model.embed.weight[:, 1:5] = 0.0
        model.embed.weight[ids, 1 + owner] = 1.0
        model.moe.router.weight[torch.arange(4), 1 + torch.arange(4)] = 5.0
    tokens = torch.randint(0, 32, (64, 10), generator=g)
    task = (tokens[:, 0] % 2).numpy()
    with RoutingRecorder(model, labels={"task": task}) as rec:
        model(tokens)
    return model, rec.stats()


def test_importance_is_frequency_times_mean_gate():
    model, stats = _skewed()
    table = expert_importance(model, stats)
    assert list(table["expert"]) == [0, 1, 2, 3] and table["frequency"].sum() == pytest.approx(1)
    np.testing.assert_allclose(table["importance"], table["frequency"] * table["mean_gate"])
    load = stats.expert_load()
    np.testing.assert_allclose(table["count"], load["count"])
    assert table["frequency"].iat[0] > 0.5 > table["frequency"].iat[3]
    assert table["layers"].iat[0] == ("moe.experts.0.fc1", "moe.experts.0.fc2")
    per_task = expert_importance(model, stats, label="task", value=1)
    assert per_task["count"].sum() < table["count"].sum()


def test_milp_meets_the_budget_and_gives_frequent_experts_more_bits():
    model, stats = _skewed()
    before = state_hash(model)
    alloc = allocate_expert_bits(model, stats, average_bits=3.0, bits=(2, 3, 4, 8))
    weights = alloc["weights"].to_numpy()
    used = float((alloc["bits"] * weights).sum())
    assert used == alloc.attrs["used"] <= alloc.attrs["budget"] == 3.0 * weights.sum()
    order = np.argsort(-alloc["importance"].to_numpy())
    bits = alloc["bits"].to_numpy()[order]
    assert (np.diff(bits) <= 0).all() and bits[0] > bits[-1]  # more important: more bits
    widths = [2, 3, 4, 8]
    for i, b in enumerate(alloc["bits"]):  # optimal: no used expert can move up a width
        if b < 8 and alloc["importance"].iat[i] > 0:
            step = widths[widths.index(b) + 1] - b
            assert used + step * weights[i] > alloc.attrs["budget"]
    assert state_hash(model) == before


def test_byte_budget_is_exact_and_quantized_experts_match_it():
    model, stats = _skewed()
    uniform = allocate_expert_bits(model, stats, average_bits=3.0, bits=(3,))
    budget = int(uniform["bytes"].sum())
    alloc = allocate_expert_bits(model, stats, budget_bytes=budget, bits=(2, 3, 4))
    assert alloc.attrs["used"] == alloc["bytes"].sum() <= budget
    q = quantize_experts(model, alloc)
    table = describe(q).set_index("layer")
    for row in alloc.itertuples():
        assert {int(table.loc[n, "bits"]) for n in row.layers} == {row.bits}
        assert sum(int(table.loc[n, "bytes"]) for n in row.layers) == row.bytes
    assert table.loc["head", "bits"] == 32 and table.loc["moe.router", "bits"] == 32


def test_bad_budgets_and_foreign_stats_are_errors():
    model, stats = _skewed()
    other, _ = _skewed()
    with torch.no_grad():
        other.moe.router.weight.add_(0.1)
    before = state_hash(model)
    with pytest.raises(ConfigError, match="exactly one budget"):
        allocate_expert_bits(model, stats)
    with pytest.raises(ConfigError, match="below"):
        allocate_expert_bits(model, stats, average_bits=1.5, bits=(2, 4))
    with pytest.raises(ConfigError, match="bits"):
        allocate_expert_bits(model, stats, average_bits=3, bits=(3, 5))
    with pytest.raises(MoEError, match="another model"):
        allocate_expert_bits(other, stats, average_bits=3)
    with pytest.raises(MoEError, match="does not have"):
        quantize_experts(model, {("moe", 9): 4})
    assert state_hash(model) == before


def test_mixtral_experts_get_mixed_precision():
    torch.manual_seed(0)
    config = tf.MixtralConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
        num_local_experts=4,
        num_experts_per_tok=2,
    )
    model = tf.MixtralForCausalLM(config).eval()
    before = state_hash(model)
    ids = torch.randint(0, 64, (4, 12), generator=torch.Generator().manual_seed(0))
    with RoutingRecorder(model) as rec:
        model(ids)
    alloc = allocate_expert_bits(model, rec.stats(), average_bits=3.0, bits=(2, 4))
    assert set(alloc["bits"]) == {2, 4}  # mixed: half the experts at 4, half at 2
    q = quantize_experts(model, alloc)
    table = describe(q).set_index("layer")
    first = alloc.iloc[0]
    assert table.loc[f"{first.layer}.experts.gate_up_proj.{first.expert}", "bits"] == first.bits
    assert set(table.loc[table["kind"] == "experts", "kernel"]) == {"simulated"}
    with torch.no_grad():
        ref, out = model(ids).logits, q(ids).logits
    assert (out - ref).abs().max() < ref.abs().max()
    assert state_hash(model) == before
