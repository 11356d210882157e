"""Masks: tied to a model, soft until applied, reversible, comparable, saved without pickle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from prune_helpers import mlp, parametrizations, same_state, snapshot, state, unchanged
from torch import nn
from torch.nn.utils import parametrize

from nasviz.errors import CheckpointError, MaskError
from nasviz.prune import Masks, applied, magnitude, random, remove


class _Double(nn.Module):
    """A parametrization that is not nasviz's."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 2 * w


def test_apply_masks_outputs_and_remove_restores_weights(small_mlp):
    x = torch.randn(5, 64)
    dense = small_mlp(x)
    before = state(small_mlp)
    masks = magnitude(small_mlp, 0.6)
    assert same_state(small_mlp, before)  # soft: computing masks changes nothing
    masks.apply(small_mlp)
    assert (small_mlp[0].weight[~masks["0.weight"]] == 0).all()
    assert not torch.allclose(small_mlp(x), dense)
    remove(small_mlp)
    assert same_state(small_mlp, before)
    assert torch.equal(small_mlp(x), dense)


def test_remove_permanent_keeps_zeros_without_parametrizations(small_mlp):
    masks = magnitude(small_mlp, 0.5)
    masks.apply(small_mlp)
    remove(small_mlp, permanent=True)
    assert not hasattr(small_mlp[0], "parametrizations")
    assert torch.equal(small_mlp[0].weight != 0, masks["0.weight"])


def test_reapplying_replaces_masks_and_names_stay_plain(small_mlp):
    magnitude(small_mlp, 0.3).apply(small_mlp)
    second = magnitude(small_mlp, 0.7)
    assert set(second) == {"0.weight", "2.weight", "4.weight"}  # plain names while parametrized
    second.apply(small_mlp)
    assert len(small_mlp[0].parametrizations.weight) == 1
    assert torch.equal(small_mlp[0].weight != 0, second["0.weight"])


def test_stats_has_one_row_per_tensor(small_mlp):
    masks = magnitude(small_mlp, 0.5, scope="layer")
    df = masks.stats()
    assert list(df["name"]) == ["0.weight", "2.weight", "4.weight"]
    assert list(df["params"]) == [64 * 48, 48 * 32, 32 * 10]
    assert (df["kept"] + df["removed"] == df["params"]).all()
    assert np.allclose(df["sparsity"], 0.5, atol=1e-3)
    assert masks.total == df["params"].sum() and masks.kept == df["kept"].sum()


def test_masks_for_another_model_name_the_parameter_and_both_shapes(small_mlp):
    other = mlp((64, 40, 32, 10))
    masks = magnitude(other, 0.5)
    before = state(small_mlp)
    with pytest.raises(MaskError, match=r"'0.weight'.*\(40, 64\).*\(48, 64\)"):
        masks.apply(small_mlp)
    assert same_state(small_mlp, before)
    assert not hasattr(small_mlp[0], "parametrizations")  # nothing registered before the error
    with pytest.raises(MaskError, match="'fc.weight' names no parameter"):
        Masks({"fc.weight": torch.ones(3, 3, dtype=torch.bool)}, model=small_mlp)


def test_empty_masks_and_non_modules_are_refused():
    with pytest.raises(MaskError, match="non-empty"):
        Masks({})
    with pytest.raises(MaskError, match="no prunable parameters"):
        magnitude(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), 0.5)


def test_and_or_overlap(small_mlp):
    a, b = magnitude(small_mlp, 0.5), random(small_mlp, 0.5, seed=1)
    both, either = a & b, a | b
    for n in a:
        assert torch.equal(both[n], a[n] & b[n]) and torch.equal(either[n], a[n] | b[n])
    assert a.overlap(a) == 1.0
    pa = sum(int((~a[n]).sum()) for n in a)
    pb = sum(int((~b[n]).sum()) for n in b)
    inter = sum(int((~a[n] & ~b[n]).sum()) for n in a)
    assert a.overlap(b) == pytest.approx(inter / (pa + pb - inter))
    per = a.overlap_per_layer(b)
    assert list(per.columns) == ["name", "both", "only_a", "only_b", "overlap"]
    assert per["both"].sum() == inter
    with pytest.warns(
        FutureWarning, match=r"overlap\(other, per_layer=True\) is now overlap_per_layer"
    ):
        assert a.overlap(b, per_layer=True).equals(per)


def test_comparing_masks_of_different_shapes_fails(small_mlp):
    a = magnitude(small_mlp, 0.5)
    b = magnitude(mlp((64, 40, 32, 10)), 0.5)
    with pytest.raises(MaskError, match="shape"):
        _ = a & b


def test_save_load_round_trip_without_pickle(tmp_path, small_mlp):
    masks = magnitude(small_mlp, 0.37)
    path = masks.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as data:  # loads without pickle
        assert data["m0"].dtype == np.uint8 and data["m0"].size == (64 * 48 + 7) // 8
    loaded = Masks.load(path, model=small_mlp)
    assert loaded == masks and loaded.meta["method"] == "magnitude"


def test_loading_a_foreign_file_is_a_checkpoint_error(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError):
        Masks.load(tmp_path / "x.npz")


@given(
    st.lists(st.tuples(st.integers(1, 9), st.integers(1, 13)), min_size=1, max_size=4),
    st.integers(0, 2**31),
)
def test_save_load_round_trips_any_shapes(tmp_path_factory, shapes, seed):
    g = torch.Generator().manual_seed(seed)
    masks = Masks({f"l{i}.weight": torch.rand(s, generator=g) > 0.5 for i, s in enumerate(shapes)})
    path = masks.save(tmp_path_factory.mktemp("m") / "m.npz")
    assert Masks.load(path) == masks


@given(st.integers(0, 2**31))
def test_set_algebra_invariants(seed):
    g = torch.Generator().manual_seed(seed)
    a = Masks({"w": torch.rand(7, 5, generator=g) > 0.5})
    b = Masks({"w": torch.rand(7, 5, generator=g) > 0.3})
    assert (a & b).kept <= min(a.kept, b.kept) <= max(a.kept, b.kept) <= (a | b).kept
    assert (a & b).kept + (a | b).kept == a.kept + b.kept
    assert a.overlap(b) == b.overlap(a)


def test_remove_checks_everything_before_taking_any_mask_off(small_mlp):
    masks = magnitude(small_mlp, 0.5)
    masks.apply(small_mlp)
    parametrize.register_parametrization(small_mlp[4], "weight", _Double())  # a foreign one
    before = snapshot(small_mlp)
    assert [p[2] for p in parametrizations(small_mlp)] == [
        ("_Mask",),
        ("_Mask",),
        ("_Mask", "_Double"),
    ]
    with pytest.raises(MaskError, match=r"\['4.weight'\].*other parametrizations"):
        remove(small_mlp)
    assert unchanged(small_mlp, before)  # layers 0 and 2 still masked: all or nothing
    with pytest.raises(MaskError, match="other parametrizations"):
        masks.remove(small_mlp)
    assert unchanged(small_mlp, before)
    remove(small_mlp, names=["0.weight", "2.weight"])  # the ones that can go, by name
    assert [p[:2] for p in parametrizations(small_mlp)] == [("4", "weight")]


def test_masks_remove_takes_off_its_own_masks_only(small_mlp):
    x = torch.randn(3, 64)
    dense = small_mlp(x)
    first = magnitude(small_mlp, 0.5, include=["0.weight"])
    second = magnitude(small_mlp, 0.5, include=["2.weight"])
    first.apply(small_mlp)
    second.apply(small_mlp)
    assert set(applied(small_mlp)) == {"0.weight", "2.weight"}
    first.remove(small_mlp)
    assert applied(small_mlp) == Masks({"2.weight": second["2.weight"]})
    second.remove(small_mlp)
    assert applied(small_mlp) is None and torch.equal(small_mlp(x), dense)
    before = snapshot(small_mlp)
    with pytest.raises(MaskError, match="another model"):
        magnitude(mlp((64, 40, 32, 10)), 0.5).remove(small_mlp)
    assert unchanged(small_mlp, before)
