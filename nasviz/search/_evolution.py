"""Vectorized evolutionary operators on index matrices (one row per arch, one column per
dimension holding the index of its value), shared by the NSGA-II strategy and the predictor's
inner NSGA-II.

Objective matrices ``F`` are ``(n, m)`` in objective units; ``signs`` (+1 minimize, -1
maximize) turn them into "lower is better".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nasviz.objectives import Objective
from nasviz.search._pareto import pareto_rank

__all__ = ["breed", "crowding_distance", "nsga2_order", "violation"]


def crowding_distance(points: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row within its front (inf at the front's extremes)."""
    out = np.zeros(len(points))
    for r in np.unique(ranks):
        members = np.flatnonzero(ranks == r)
        if len(members) <= 2:
            out[members] = np.inf
            continue
        front = points[members]  # (k, m)
        for col in front.T:
            order = np.argsort(col, kind="stable")
            span = col[order[-1]] - col[order[0]]
            gaps = np.empty(len(order))
            gaps[[0, -1]] = np.inf
            gaps[1:-1] = (col[order[2:]] - col[order[:-2]]) / (span if span > 0 else 1.0)
            out[members[order]] += gaps
    return out


def violation(
    F: np.ndarray, objectives: Sequence[Objective], bounds: Mapping[str, float]
) -> np.ndarray:
    """Summed relative violation of the objective bounds per row (0 when feasible)."""
    viol = np.zeros(len(F))
    for i, o in enumerate(objectives):
        if o.name in bounds:
            bound = bounds[o.name]
            viol += np.maximum(0.0, o.sign * (F[:, i] - bound)) / max(abs(bound), 1e-12)
    return viol


def nsga2_order(
    F: np.ndarray, objectives: Sequence[Objective], bounds: Mapping[str, float]
) -> np.ndarray:
    """Row order, best first: feasible first, then by Pareto rank, then most isolated first."""
    ranks = pareto_rank(F, [o.direction for o in objectives])
    signs = np.array([o.sign for o in objectives])
    crowd = crowding_distance(F * signs, ranks)
    return np.lexsort((-crowd, ranks, violation(F, objectives, bounds)))


def breed(
    pop: np.ndarray,
    position: np.ndarray,
    sizes: np.ndarray,
    rng: np.random.Generator,
    n: int,
    crossover_prob: float = 1.0,
    swapping_prob: float = 0.5,
    mutation_prob: float | None = None,
) -> np.ndarray:
    """``n`` children of ``pop`` (``(P, d)`` index rows): binary tournaments on ``position``
    (lower is better), uniform crossover with a random mate (with probability
    ``crossover_prob``, else a copy of the parent; each dimension from the mate with
    probability ``swapping_prob``), then each dimension redrawn uniformly with probability
    ``mutation_prob`` (default ``1 / d``). Returns ``(n, d)`` index rows."""
    P, d = pop.shape
    a, b = rng.integers(0, P, size=(2, n))  # binary tournaments
    parents = np.where(position[a] < position[b], a, b)  # (n,)
    mates = parents[rng.permutation(n)]
    swap = rng.random((n, d)) < swapping_prob  # uniform crossover
    if crossover_prob < 1.0:
        swap &= (rng.random(n) < crossover_prob)[:, None]
    children = np.where(swap, pop[mates], pop[parents])  # (n, d)
    mutate = rng.random((n, d)) < (1.0 / d if mutation_prob is None else mutation_prob)
    return np.where(mutate, rng.integers(0, sizes, size=(n, d)), children)
