"""SearchSpace and Arch: the spec of nasviz/space.py."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasviz import Arch, SearchSpace, SpaceError

SPACE = SearchSpace({"depth": [4, 2, 3], "width": [32, 64, 128], "act": ["relu", "gelu", "silu"]})


def test_ordinal_dimensions_are_sorted_and_categorical_keep_order():
    assert SPACE.dims["depth"] == (2, 3, 4)
    assert SPACE.dims["act"] == ("relu", "gelu", "silu")
    assert SPACE.is_ordinal("depth") and not SPACE.is_ordinal("act")


def test_largest_smallest_and_size():
    assert SPACE.largest() == Arch(depth=4, width=128, act="silu")
    assert SPACE.smallest() == Arch(depth=2, width=32, act="relu")
    assert SPACE.size == 27
    assert len(list(SPACE)) == 27 == len(set(SPACE))


def test_size_is_an_exact_python_int_past_1e19():
    big = SearchSpace(SearchSpace.repeated("k", 45, [3, 5, 7]))
    assert isinstance(big.size, int)
    assert big.size == 3**45 > 10**19


def test_repeated_dimensions_and_group():
    space = SearchSpace({**SearchSpace.repeated("depth", 3, [2, 3, 4]), "width": [8, 16]})
    arch = space.arch(**{"depth.0": 2, "depth.1": 4, "depth.2": 3, "width": 8})
    assert arch.group("depth") == (2, 4, 3)
    with pytest.raises(KeyError, match="no repeated dimension 'kernel'"):
        arch.group("kernel")


def test_arch_is_immutable_hashable_ordered_and_json_round_trips():
    arch = SPACE.arch(width=64, depth=3, act="gelu")
    assert list(arch) == ["depth", "width", "act"]  # the space's order, not the caller's
    with pytest.raises(AttributeError):
        arch.depth = 2  # type: ignore[attr-defined]
    assert {arch: 1}[Arch(depth=3, width=64, act="gelu")] == 1
    assert Arch.from_json(arch.to_json()) == arch
    assert json.loads(arch.to_json()) == {"depth": 3, "width": 64, "act": "gelu"}
    assert pickle.loads(pickle.dumps(arch)) == arch
    assert arch.replace(depth=4)["depth"] == 4 and arch["depth"] == 3


def test_space_json_round_trip():
    again = SearchSpace.from_json(SPACE.to_json())
    assert again == SPACE and hash(again) == hash(SPACE)


@pytest.mark.parametrize(
    ("dims", "needle"),
    [
        ({}, "at least one dimension"),
        ({"depth": []}, "dimension 'depth' is empty"),
        ({"depth": [2, 2, 3]}, "dimension 'depth' has duplicate values 2"),
        ({"flag": [True, 1]}, "duplicate values"),
        ({"w": [1, None]}, "dimension 'w': value None of type NoneType is not allowed"),
        ({"w": [1.0, float("nan")]}, "not finite"),
        ({"w": [[1], [2]]}, "JSON scalars"),
        ({"w": "abc"}, "values must be a list"),
    ],
)
def test_bad_spaces_name_the_dimension(dims, needle):
    with pytest.raises(SpaceError, match=needle):
        SearchSpace(dims)


def test_validate_names_dimension_and_allowed_values():
    with pytest.raises(
        SpaceError, match=r"dimension 'width': 48 is not allowed; allowed values: \[32, 64, 128\]"
    ):
        SPACE.validate({"depth": 2, "width": 48, "act": "relu"})
    with pytest.raises(
        SpaceError,
        match=r"unknown dimension 'heads'; known dimensions: \['depth', 'width', 'act'\]",
    ):
        SPACE.validate({"depth": 2, "width": 32, "act": "relu", "heads": 2})
    with pytest.raises(SpaceError, match=r"missing dimension\(s\) \['act'\]"):
        SPACE.validate({"depth": 2, "width": 32})
    with pytest.raises(SpaceError, match="allowed values"):
        SearchSpace({"on": [True, False]}).validate({"on": 1})  # 1 is not True here
    assert isinstance(SpaceError("x"), ValueError)


def test_validate_accepts_numpy_scalars_and_canonicalizes():
    arch = SPACE.validate({"depth": np.int64(3), "width": 64.0, "act": "relu"})
    assert arch["width"] == 64 and type(arch["width"]) is int and type(arch["depth"]) is int


def test_sample_is_seeded_and_inside():
    a = SPACE.sample(np.random.default_rng(7), n=50)
    b = SPACE.sample(7, n=50)
    assert a == b
    assert all(x in SPACE for x in a)
    assert len(set(a)) > 10  # it really is random


def test_neighbors_are_one_step_away():
    arch = SPACE.arch(depth=3, width=32, act="gelu")
    nbrs = SPACE.neighbors(arch)
    # depth: 2 and 4; width: 64 only (32 is the edge); act: the two other values
    assert len(nbrs) == 2 + 1 + 2
    for n in nbrs:
        changed = [k for k in arch if arch[k] != n[k]]
        assert len(changed) == 1


def test_encoding_layout():
    assert SPACE.encoding_size == 1 + 1 + 3
    np.testing.assert_allclose(
        SPACE.encode(SPACE.arch(depth=3, width=128, act="gelu")), [0.5, 1.0, 0, 1, 0]
    )


def test_decode_rejects_wrong_length():
    with pytest.raises(SpaceError, match=r"expected an encoding of shape \(5,\)"):
        SPACE.decode([0.0, 1.0])


@st.composite
def spaces_and_archs(draw):
    n_dims = draw(st.integers(1, 5))
    dims = {}
    for i in range(n_dims):
        if draw(st.booleans()):
            values = draw(st.lists(st.integers(-50, 50), min_size=1, max_size=5, unique=True))
        else:
            values = draw(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=4, unique=True))
        dims[f"d{i}"] = values
    space = SearchSpace(dims)
    seed = draw(st.integers(0, 2**32 - 1))
    return space, space.sample(seed)


@given(spaces_and_archs())
def test_encode_decode_round_trip(pair):
    space, arch = pair
    vec = space.encode(arch)
    assert vec.shape == (space.encoding_size,)
    assert ((vec >= 0) & (vec <= 1)).all()
    assert space.decode(vec) == arch
    assert space.from_indices(space.index_of(arch)) == arch


@given(spaces_and_archs(), st.integers(0, 2**32 - 1))
def test_sampling_and_mutation_stay_inside(pair, seed):
    space, arch = pair
    rng = np.random.default_rng(seed)
    assert all(a in space for a in space.sample(rng, n=5))
    mutant = space.mutate(arch, rng)
    assert mutant in space
    if space.size > 1:
        assert mutant != arch
    assert all(n in space and n != arch for n in space.neighbors(arch))
