"""Pareto filtering and hypervolume (moocore) against exhaustive brute force, both directions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasviz.errors import ConfigError
from nasviz.search import (
    default_reference,
    hypervolume,
    hypervolume_trace,
    pareto_mask,
    pareto_rank,
)

DIRS = st.lists(st.sampled_from(["minimize", "maximize"]), min_size=2, max_size=3)


@st.composite
def point_sets(draw):
    directions = draw(DIRS)
    n = draw(st.integers(1, 12))
    values = draw(
        st.lists(
            st.lists(st.integers(0, 5), min_size=len(directions), max_size=len(directions)),
            min_size=n,
            max_size=n,
        )
    )
    return np.array(values, dtype=float), directions


def dominates(p, q, signs):
    p, q = p * signs, q * signs
    return bool(np.all(p <= q) and np.any(p < q))


@given(point_sets())
def test_pareto_mask_matches_brute_force(data):
    values, directions = data
    signs = np.array([1 if d == "minimize" else -1 for d in directions])
    expected = [not any(dominates(q, p, signs) for q in values) for p in values]
    assert pareto_mask(values, directions).tolist() == expected
    ranks = pareto_rank(values, directions)
    assert ((ranks == 0) == np.array(expected)).all()


def brute_hypervolume(values, directions, ref):
    """Counts the unit cells of the integer grid dominated by at least one point."""
    signs = np.array([1 if d == "minimize" else -1 for d in directions])
    pts, r = values * signs, np.asarray(ref) * signs
    lows = np.floor(pts.min(axis=0)).astype(int)
    total = 0
    for cell in itertools.product(*(range(lo, int(hi)) for lo, hi in zip(lows, r, strict=True))):
        corner = np.array(cell, dtype=float)  # cell = [corner, corner + 1)
        if np.any(np.all(pts <= corner, axis=1)):
            total += 1
    return float(total)


@given(point_sets())
def test_hypervolume_matches_brute_force(data):
    values, directions = data
    # integer reference worse than every point: 7 for minimize, -2 for maximize
    ref = [7.0 if d == "minimize" else -2.0 for d in directions]
    assert hypervolume(values, directions, ref) == pytest.approx(
        brute_hypervolume(values, directions, ref)
    )
    trace = hypervolume_trace(values, directions, ref)
    assert trace[-1] == pytest.approx(brute_hypervolume(values, directions, ref))
    assert np.all(np.diff(trace) >= -1e-9)
    for k in (1, len(values) // 2 + 1):
        assert trace[k - 1] == pytest.approx(brute_hypervolume(values[:k], directions, ref))


def test_points_past_the_reference_add_nothing():
    values = np.array([[1.0, 1.0], [5.0, 0.0]])
    assert hypervolume(values, ["minimize", "minimize"], [2.0, 2.0]) == pytest.approx(1.0)
    assert hypervolume(values, ["maximize", "maximize"], [0.0, 0.0]) == pytest.approx(1.0)


def test_default_reference_is_the_nadir_moved_past_the_range():
    values = np.array([[0.0, 10.0], [2.0, 30.0]])
    ref = default_reference(values, ["minimize", "maximize"])
    assert ref.tolist() == pytest.approx([2.2, 8.0])
    assert hypervolume(values, ["minimize", "maximize"], ref) > 0


def test_bad_reference_and_directions_are_config_errors():
    values = np.zeros((2, 2))
    with pytest.raises(ConfigError, match="2 finite value"):
        hypervolume(values, ["minimize", "minimize"], [1.0])
    with pytest.raises(ConfigError, match="direction"):
        pareto_mask(values, ["minimize", "up"])
