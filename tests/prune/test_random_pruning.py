"""Random pruning: uniform and ERK layer ratios, seeded."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from prune_helpers import snapshot, unchanged

from nasviz.errors import ConfigError, MaskError
from nasviz.prune import erk_densities, magnitude, random


def test_uniform_prunes_every_layer_to_the_sparsity_and_is_seeded(small_cnn):
    a = random(small_cnn, 0.4, seed=3)
    for mask in a.values():
        assert int((~mask).sum()) == round(0.4 * mask.numel())
    assert a == random(small_cnn, 0.4, seed=3)
    assert a != random(small_cnn, 0.4, seed=4)


def test_erk_keeps_the_overall_budget_and_favours_small_layers(small_cnn):
    masks = random(small_cnn, 0.8, distribution="erk")
    assert masks.sparsity == pytest.approx(0.8, abs=0.01)
    df = masks.stats().set_index("name")
    assert (
        df.loc["3.dw.0.weight", "sparsity"] < df.loc["4.weight", "sparsity"]
    )  # 216 vs 1152 weights


def test_erk_density_follows_the_formula_where_not_clamped():
    shapes = {"a": (64, 32, 3, 3), "b": (128, 64, 3, 3), "c": (10, 128)}
    d = erk_densities(shapes, 0.9)
    raw = {n: sum(s) / torch.Size(s).numel() for n, s in shapes.items()}
    assert d["a"] / d["b"] == pytest.approx(raw["a"] / raw["b"])
    total = sum(torch.Size(s).numel() for s in shapes.values())
    assert sum(d[n] * torch.Size(s).numel() for n, s in shapes.items()) == pytest.approx(
        0.1 * total
    )


@given(
    st.floats(0, 0.99),
    st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=5),
)
def test_erk_densities_are_valid_and_meet_the_budget(sparsity, shapes):
    named = {f"l{i}": s for i, s in enumerate(shapes)}
    d = erk_densities(named, sparsity)
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in d.values())
    total = sum(a * b for a, b in shapes)
    assert sum(d[n] * a * b for n, (a, b) in named.items()) == pytest.approx(
        (1 - sparsity) * total, rel=1e-6
    )


def test_bad_distribution_and_sparsity_change_nothing(small_cnn):
    magnitude(small_cnn, 0.3).apply(small_cnn)  # a masked model stays exactly as it is
    before = snapshot(small_cnn)
    with pytest.raises(ConfigError, match="distribution"):
        random(small_cnn, 0.5, distribution="normal")
    with pytest.raises(MaskError, match=r"\[0, 1\)"):
        random(small_cnn, 1.0)
    assert unchanged(small_cnn, before)
    random(small_cnn, 0.5, distribution="erk")
    assert unchanged(small_cnn, before)
