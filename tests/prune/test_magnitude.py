"""Magnitude pruning: exact counts, torch's global_unstructured equivalence, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from prune_helpers import cnn, same_state, state
from torch.nn.utils import prune as torch_prune

from nasviz.errors import ConfigError, MaskError
from nasviz.prune import magnitude
from nasviz.prune._magnitude import _global_keep, lowest_k


@pytest.mark.parametrize("sparsity", [0.0, 0.2, 0.5, 0.9])
def test_global_masks_equal_torch_global_unstructured_l1(small_cnn, sparsity):
    ours = magnitude(small_cnn, sparsity, scope="global")
    modules = {n: small_cnn.get_submodule(n.rpartition(".")[0]) for n in ours}
    torch_prune.global_unstructured(
        [(m, "weight") for m in modules.values()],
        pruning_method=torch_prune.L1Unstructured,
        amount=sparsity,
    )
    for name, module in modules.items():
        assert torch.equal(ours[name], module.weight_mask.bool()), name


def test_layer_scope_prunes_each_tensor_to_the_sparsity(small_cnn):
    masks = magnitude(small_cnn, 0.5, scope="layer")
    for name, mask in masks.items():
        w = small_cnn.get_parameter(name).detach().abs()
        assert int((~mask).sum()) == round(0.5 * mask.numel())
        assert (
            w[~mask].max() <= w[mask].min()
        )  # every pruned weight is no larger than every kept one


def test_global_scope_prunes_different_layers_differently(small_cnn):
    df = magnitude(small_cnn, 0.5).stats()
    assert df["sparsity"].std() > 0.01


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "half", None, True])
def test_sparsity_outside_0_1_is_a_mask_error_and_changes_nothing(small_cnn, bad):
    before = state(small_cnn)
    with pytest.raises(MaskError, match=r"sparsity must be"):
        magnitude(small_cnn, bad)
    assert same_state(small_cnn, before)


def test_unknown_scope_and_params():
    model = cnn()
    with pytest.raises(ConfigError, match="scope"):
        magnitude(model, 0.5, scope="net")
    with pytest.raises(ConfigError, match="unknown"):
        magnitude(model, 0.5, params=["nope.weight"])
    only = magnitude(model, 0.5, params=["8.weight", "8.bias"])
    assert set(only) == {"8.weight", "8.bias"}


@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.floats(0, 1))
def test_lowest_k_prunes_exactly_k_even_with_ties(values, frac):
    scores = torch.tensor(values, dtype=torch.float32)
    k = round(frac * len(values))
    keep = lowest_k(scores, k)
    assert int((~keep).sum()) == k
    if 0 < k < len(values):
        assert scores[~keep].max() <= scores[keep].min()


@given(st.integers(0, 2**31), st.floats(0.0001, 0.9999))
def test_bracketed_kth_smallest_equals_kthvalue(seed, q):
    from nasviz.prune._magnitude import _kth_smallest

    scores = torch.randn(20_000, generator=torch.Generator().manual_seed(seed)).round(
        decimals=2
    )  # with ties
    k = max(1, round(q * scores.numel()))
    assert _kth_smallest(scores, k, sample=256) == torch.kthvalue(scores, k).values


@given(
    st.lists(st.integers(1, 400), min_size=1, max_size=4),
    st.integers(0, 2**31),
    st.floats(0, 1),
)
def test_global_selection_without_concatenating_equals_lowest_k_on_the_concatenation(
    sizes, seed, frac
):
    g = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(n, generator=g).round(decimals=1) for n in sizes]  # many ties
    flat = torch.cat([t.abs() for t in tensors])
    k = round(frac * flat.numel())
    got = _global_keep(tensors, k, sample=16)  # tiny sample: the bracketed path runs
    assert torch.equal(torch.cat(got), lowest_k(flat, k))
    assert all(m.shape == t.shape for m, t in zip(got, tensors, strict=True))


def test_global_masks_equal_lowest_k_on_the_concatenation_on_both_paths():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(300, 40), torch.nn.Linear(40, 300))
    ours = magnitude(model, 0.37)
    flat = torch.cat([model[0].weight.abs().flatten(), model[1].weight.abs().flatten()])
    reference = lowest_k(flat, round(0.37 * flat.numel()))
    got = torch.cat([ours["0.weight"].flatten(), ours["1.weight"].flatten()])
    assert torch.equal(got, reference)
    keep = _global_keep([model[0].weight, model[1].weight], round(0.37 * flat.numel()), 64)
    assert torch.equal(torch.cat([k.flatten() for k in keep]), reference)
