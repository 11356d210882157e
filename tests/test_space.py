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
        ({"depth": [2, 2, 3]}, r"dimension 'depth' has duplicate values 2 in \[2, 2, 3\]"),
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
    with pytest.raises(
        SpaceError,
        match=r"missing dimension\(s\) \['width', 'act'\] \(allowed values: "
        r"width: \[32, 64, 128\]; act: \['relu', 'gelu', 'silu'\]\)",
    ):
        SPACE.validate({"depth": 2})
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


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: SPACE.decode([float("nan"), 0, 1, 0, 0]), r"must be finite; positions \[0\]"),
        (lambda: SPACE.decode([0, float("inf"), 1, 0, 0]), r"must be finite; positions \[1\]"),
        (lambda: SPACE.decode(["a", 0, 1, 0, 0]), "a vector of 5 finite floats"),
        (lambda: SPACE.from_indices(["a", 0, 0]), r"'depth': index \(0..2\) must be an int, got 'a'"),
        (lambda: SPACE.from_indices([1.7, 0, 0]), r"'depth': index \(0..2\) must be an int, got 1.7"),
        (lambda: SPACE.from_indices([0, True, 0]), "'width': index .* must be an int, got True"),
        (lambda: SPACE.from_indices([0, 3, 0]), r"'width': index 3 out of range 0..2"),
        (lambda: SPACE.sample(0, n=2.5), "n .* must be an int >= 0, got 2.5"),
        (lambda: SPACE.sample(0, n=-1), "n .* must be an int >= 0, got -1"),
        (lambda: SPACE.sample(-1), "seed must be an int >= 0, got -1"),
        (lambda: SPACE.sample("seed"), "rng must be a numpy Generator, an int seed >= 0 or None"),
        (lambda: SPACE.mutate(SPACE.smallest(), 0, prob="x"), "prob must be a number, got 'x'"),
        (lambda: SPACE.mutate(SPACE.smallest(), 0, prob=1.5), r"prob must be in \[0, 1\]"),
        (lambda: Arch.from_json('{"depth": 2'), r"Arch.from_json: not valid JSON \(.* column"),
        (lambda: Arch.from_json("[1, 2]"), "Arch.from_json needs a JSON object, got list"),
        (lambda: Arch.from_json(None), "needs a JSON string, got NoneType"),
        (lambda: SearchSpace.from_json("{depth: [2]}"), "SearchSpace.from_json: not valid JSON"),
    ],
)  # fmt: skip
def test_bad_calls_are_space_errors_naming_what_is_allowed(call, needle):
    with pytest.raises(SpaceError, match=needle):
        call()


def test_arch_equality_is_mapping_equality_and_hash_follows_it():
    ab, ba, plain = Arch(a=1, b=2), Arch(b=2, a=1), {"a": 1, "b": 2}
    assert ab == ba == plain and ab == plain and ba == plain  # transitive
    assert hash(ab) == hash(ba) and len({ab, ba}) == 1
    assert list(ab) == ["a", "b"] and list(ba) == ["b", "a"]  # order kept for iteration
    assert ab.to_json() == '{"a":1,"b":2}' and ba.to_json() == '{"b":2,"a":1}'
    assert ab != Arch(a=1, b=3) and ab != Arch(a=1) and ab != {"a": 1, "b": 2, "c": 3}
    assert ab != [("a", 1), ("b", 2)]  # not a mapping: never equal


FINITE_FLOATS = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
DIMENSION_VALUES = {
    "int": st.integers(-50, 50),
    "float": FINITE_FLOATS,
    "str": st.sampled_from("abcdefg"),
    "bool": st.booleans(),
    # unique=True below keeps 1, 1.0 and True from clashing (the space would refuse them)
    "mixed": st.one_of(st.integers(-5, 5), FINITE_FLOATS, st.sampled_from("xyz"), st.booleans()),
}


@st.composite
def spaces(draw, max_dims: int = 5):
    dims = {}
    for i in range(draw(st.integers(1, max_dims))):
        kind = draw(st.sampled_from(sorted(DIMENSION_VALUES)))
        values = draw(st.lists(DIMENSION_VALUES[kind], min_size=1, max_size=5, unique=True))
        dims[f"{kind}{i}"] = values
    return SearchSpace(dims)


@st.composite
def spaces_and_archs(draw):
    space = draw(spaces())
    return space, space.sample(draw(st.integers(0, 2**32 - 1)))


@given(spaces())
def test_every_kind_of_dimension_builds_a_consistent_space(space):
    for name, values in space.dims.items():
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        assert space.is_ordinal(name) == numeric
        if numeric:
            assert list(values) == sorted(values)
    assert SearchSpace.from_json(space.to_json()) == space
    arch = space.largest()
    assert Arch.from_json(arch.to_json()) == arch and space.validate(arch) == arch


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


def _distance(space: SearchSpace, arch: Arch, vec: np.ndarray) -> float:
    return float(np.linalg.norm(space.encode(arch) - vec))


@given(spaces(max_dims=3), st.integers(0, 2**32 - 1))
def test_decode_returns_the_nearest_arch(space, seed):
    # any finite vector, even outside [0, 1], decodes to an arch whose encoding is nearest
    rng = np.random.default_rng(seed)
    vec = rng.uniform(-0.5, 1.5, size=space.encoding_size)
    decoded = space.decode(vec)
    assert decoded in space
    assert space.size <= 5**3  # small enough to compare with every arch
    nearest = min(_distance(space, a, vec) for a in space)
    assert _distance(space, decoded, vec) == pytest.approx(nearest, abs=1e-12)


@given(spaces_and_archs(), st.integers(0, 2**32 - 1))
def test_decode_of_a_noisy_encoding_recovers_the_arch(pair, seed):
    space, arch = pair
    rng = np.random.default_rng(seed)
    # noise under half the gap between neighbouring encodings of every dimension
    half_gaps = []
    for name, values in space.dims.items():
        if space.is_ordinal(name):
            half_gaps.append(0.5 / max(len(values) - 1, 1))
        else:
            half_gaps += [0.5] * len(values)
    noise = rng.uniform(-0.99, 0.99, size=space.encoding_size) * np.array(half_gaps)
    assert space.decode(space.encode(arch) + noise) == arch


@given(spaces_and_archs(), st.randoms(use_true_random=False))
def test_arch_equality_and_hash_ignore_order(pair, random):
    _space, arch = pair
    items = list(arch.items())
    random.shuffle(items)
    shuffled = Arch(items)
    assert shuffled == arch == dict(items) and hash(shuffled) == hash(arch)
    assert list(shuffled) == [k for k, _ in items]
    changed = arch.replace(**{items[0][0]: "not a value of any dimension"})
    assert changed != arch and changed != shuffled


def test_len_and_iter_agree_and_sample_returns_by_n():
    space = SearchSpace({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(space) == space.size == len(list(space)) == 6 and len(space.names) == 2
    huge = SearchSpace({f"d{i}": list(range(10)) for i in range(25)})
    with pytest.raises(SpaceError, match=r"holds 10{25} archs, more than len\(\) can return"):
        len(huge)
    assert bool(huge) and huge.size == 10**25
    assert isinstance(space.sample(0), Arch) and len(space.sample(0, n=3)) == 3
