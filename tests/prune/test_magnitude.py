"""Magnitude pruning: exact counts, torch's global_unstructured equivalence (without ties),
the tie rule (index order), bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from prune_helpers import cnn, mlp, same_state, state
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
        magnitude(model, 0.5, include=["nope.weight"])
    only = magnitude(model, 0.5, include=["8.weight", "8.bias"])
    assert set(only) == {"8.weight", "8.bias"}
    every = magnitude(model, 0.5)
    rest = magnitude(model, 0.5, exclude=["8"])  # a module: all its weights
    assert set(rest) == set(every) - {"8.weight"}
    assert set(magnitude(model, 0.5, exclude=["8.weight"])) == set(rest)
    with pytest.raises(ConfigError, match=r"exclude must name parameters or modules .*\['x'\]"):
        magnitude(model, 0.5, exclude=["x"])
    with pytest.raises(ConfigError, match="leaves no weight to prune"):
        magnitude(model, 0.5, include=["8.weight"], exclude=["8"])
    with pytest.warns(FutureWarning, match=r"magnitude: params= is now include="):
        assert magnitude(model, 0.5, params=["8.weight", "8.bias"]) == only


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


def _tied_mlp() -> torch.nn.Sequential:
    """Weights on a grid of 9 magnitudes: every threshold is tied many times over."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 10), torch.nn.ReLU(), torch.nn.Linear(10, 6))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.copy_(torch.randint(-4, 5, layer.weight.shape) * 0.25)
    return model


def _torch_global(model: torch.nn.Module, names: list[str], sparsity: float) -> torch.Tensor:
    """torch's global L1 pruning on a copy of ``model``: the flat keep-mask over ``names``."""
    import copy

    twin = copy.deepcopy(model)
    modules = [twin.get_submodule(n.rpartition(".")[0]) for n in names]
    torch_prune.global_unstructured(
        [(m, "weight") for m in modules], pruning_method=torch_prune.L1Unstructured, amount=sparsity
    )
    return torch.cat([m.weight_mask.bool().flatten() for m in modules])


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5, 0.77])
def test_without_ties_global_and_layer_masks_equal_torchs(sparsity):
    model = mlp((20, 30, 10))
    weights = [model[0].weight, model[2].weight]
    flat = torch.cat([w.detach().abs().flatten() for w in weights])
    assert flat.unique().numel() == flat.numel()  # no ties anywhere: the rule is not needed
    ours = magnitude(model, sparsity)
    got = torch.cat([ours[n].flatten() for n in ("0.weight", "2.weight")])
    assert torch.equal(got, _torch_global(model, ["0.weight", "2.weight"], sparsity))
    per_layer = magnitude(model, sparsity, scope="layer")
    for name, w in zip(("0.weight", "2.weight"), weights, strict=True):
        mask = torch_prune.L1Unstructured(sparsity).compute_mask(w.detach(), torch.ones_like(w))
        assert torch.equal(per_layer[name], mask.bool()), name


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5, 0.77])
def test_ties_at_the_threshold_are_pruned_in_index_order(sparsity):
    model = _tied_mlp()
    names = ["0.weight", "2.weight"]
    flat = torch.cat([model.get_parameter(n).detach().abs().flatten() for n in names])  # (180,)
    k = round(sparsity * flat.numel())
    threshold = flat.sort().values[k - 1]
    tied = torch.nonzero(flat == threshold).flatten()
    below = int((flat < threshold).sum())
    assert below < k < below + tied.numel()  # a tie straddles the threshold

    got = torch.cat([m.flatten() for m in magnitude(model, sparsity).values()])
    expected = flat > threshold
    expected[tied[k - below :]] = True  # the first k - below tied weights pruned, later kept
    assert torch.equal(got, expected)

    theirs = _torch_global(model, names, sparsity)
    assert int((~theirs).sum()) == k == int((~got).sum())  # the same count
    assert torch.equal(theirs[flat != threshold], got[flat != threshold])  # off the tie: same
    # on the tie torch's topk picks its own k - below (which ones is unspecified)
    assert int((~theirs[tied]).sum()) == k - below


def test_params_order_decides_ties():
    model = _tied_mlp()
    forward = magnitude(model, 0.5, include=["0.weight", "2.weight"])
    backward = magnitude(model, 0.5, include=["2.weight", "0.weight"])
    assert sum(int((~m).sum()) for m in forward.values()) == 90
    assert sum(int((~m).sum()) for m in backward.values()) == 90
    # the later tensor keeps more of the tied weights
    assert int((~forward["2.weight"]).sum()) < int((~backward["2.weight"]).sum())


def test_repruning_a_masked_model_prunes_its_zeros_in_index_order():
    model = mlp((20, 30, 10))
    first = magnitude(model, 0.5)
    first.apply(model)
    again = magnitude(model, 0.3)  # the zeros of the applied masks tie at the threshold 0
    flat_first = torch.cat([m.flatten() for m in first.values()])
    flat_again = torch.cat([m.flatten() for m in again.values()])
    pruned_before = torch.nonzero(~flat_first).flatten()
    k = round(0.3 * flat_first.numel())
    expected = torch.ones_like(flat_first)
    expected[pruned_before[:k]] = False  # the first k zeros in index order
    assert torch.equal(flat_again, expected)
