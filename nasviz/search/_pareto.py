"""Non-dominated filtering and hypervolume, with objective directions handled.

Everything here delegates the geometry to `moocore <https://multi-objective.github.io/moocore>`_
(exact algorithms in C); nasviz only turns directions into signs and chooses a reference point.

Conventions:
    * ``values`` is an ``(n, m)`` array, one row per architecture, one column per objective, in
      the objectives' own units; ``directions`` holds ``"minimize"`` / ``"maximize"`` per column.
    * The **reference point** is given in the same units and directions as ``values``. It must be
      *worse* than every point that should count: larger for a minimized objective, smaller for
      a maximized one. Points that do not strictly dominate it add no volume.
    * :func:`default_reference` is the nadir (worst value per objective) of the given points,
      moved 10% of each objective's range further away (1.0 when the range is zero), so the
      extreme points of the front still add volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np

from nasviz.errors import ConfigError
from nasviz.objectives import DIRECTIONS

__all__ = ["default_reference", "hypervolume", "hypervolume_trace", "pareto_mask", "pareto_rank"]

#: How far past the nadir the default reference point lies, as a fraction of each range.
REFERENCE_MARGIN = 0.1


def _signs(directions: Sequence[str], m: int) -> np.ndarray:
    if len(directions) != m:
        raise ConfigError(f"got {m} objective column(s) but {len(directions)} direction(s)")
    for d in directions:
        if d not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {DIRECTIONS}, got {d!r}")
    return np.array([1.0 if d == "minimize" else -1.0 for d in directions])


def _as_points(
    values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]
) -> np.ndarray:
    """Values as an (n, m) float array turned into 'lower is better' by sign."""
    points = np.asarray(values, dtype=np.float64)
    if points.ndim != 2:
        raise ConfigError(f"values must be a 2-d (n, m) array, got shape {points.shape}")
    return points * _signs(directions, points.shape[1])


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows (duplicates of a non-dominated row are all kept)."""
    points = _as_points(values, directions)
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(points, keep_weakly=True), dtype=bool)


def pareto_rank(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Non-domination rank per row: 0 for the front, 1 for the front once 0 is removed, ..."""
    points = _as_points(values, directions)
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(moocore.pareto_rank(points), dtype=np.int64)


def default_reference(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """The nadir of ``values`` moved :data:`REFERENCE_MARGIN` of each range further away,
    in the objectives' own units (see the module docstring)."""
    points = _as_points(values, directions)
    if len(points) == 0:
        raise ConfigError("a default reference point needs at least one evaluated row")
    worst, best = points.max(axis=0), points.min(axis=0)
    span = np.where(worst > best, worst - best, 1.0)
    return (worst + REFERENCE_MARGIN * span) * _signs(directions, points.shape[1])


def _check_ref(ref: Sequence[float] | np.ndarray, m: int) -> np.ndarray:
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if ref.shape != (m,) or not np.all(np.isfinite(ref)):
        raise ConfigError(
            f"the reference point needs {m} finite value(s) (one per objective), got {ref.tolist()}"
        )
    return ref


def hypervolume(
    values: np.ndarray, directions: Sequence[str], ref: Sequence[float] | np.ndarray
) -> float:
    """Volume dominated by ``values`` up to the reference point ``ref`` (same units/directions)."""
    points = _as_points(values, directions)
    signs = _signs(directions, points.shape[1])
    ref = _check_ref(ref, points.shape[1]) * signs
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    return float(moocore.hypervolume(points, ref=ref))


def hypervolume_trace(
    values: np.ndarray, directions: Sequence[str], ref: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Hypervolume of the first k rows for k = 1..n (recomputed only when the front changes)."""
    points = _as_points(values, directions)
    signs = _signs(directions, points.shape[1])
    ref = _check_ref(ref, points.shape[1]) * signs
    out = np.zeros(len(points))
    front = np.zeros((0, points.shape[1]))
    hv = 0.0
    for k, p in enumerate(points):
        if np.all(p < ref) and not np.any(np.all(front <= p, axis=1)):
            front = np.vstack([front[~np.all(p <= front, axis=1)], p])
            hv = float(moocore.hypervolume(front, ref=ref))
        out[k] = hv
    return out
