"""The hypervolume curve of a search, as a share of a fixed reference box (0–1).

A raw hypervolume is a product of objective units ("40B" accuracy-points times MACs), which
nobody can read. nasviz shows it normalized: the share of the *reference box* that the front
dominates. The box spans from the reference point (worse than the points, in every objective) to
an *ideal corner*: the natural best of an objective where there is one (100% accuracy, 0 MACs,
0 parameters, 0 ms, 0 bytes), else the best value seen moved one range further. A point beyond
the ideal corner counts up to it, so the share stays within 0–1; the raw value is on hover.

The reference point is chosen once (:func:`reference_box`, rounded outward to three
significant digits so that it reads ``8.26``, not ``8.2527881040``) and then stays, so the curve
never rescales; points worse than it add nothing, as in any hypervolume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from nasviz.objectives import Objective
from nasviz.search import hypervolume_trace
from nasviz.viz._compat import old_info_call
from nasviz.viz._format import labelled, nice_bound, si, unit_of
from nasviz.viz._pareto import done_and_feasible, objective_specs
from nasviz.viz._static import Figure
from nasviz.viz._style import HYPERVOLUME_STYLE

__all__ = [
    "REFERENCE_MARGIN",
    "HypervolumeInfo",
    "box_volume",
    "hypervolume_figure",
    "hypervolume_info",
    "hypervolume_plot",
    "hypervolume_title",
    "natural_ideal",
    "normalized_trace",
    "reference_box",
]

#: The reference point sits this share of each objective's range beyond the worst point seen
#: when it is chosen (generous, so that later points seldom fall outside it).
REFERENCE_MARGIN = 0.5


class HypervolumeInfo(NamedTuple):
    """Hypervolume after each evaluation (failed ones included in the count): ``hypervolume``
    in objective units, ``normalized`` as a share of the box from ``ideal`` to ``reference``."""

    evaluations: np.ndarray
    hypervolume: np.ndarray
    normalized: np.ndarray
    reference: np.ndarray
    ideal: np.ndarray


def natural_ideal(name: str, direction: str) -> float | None:
    """The best value an objective can take, where its unit says (100% accuracy, 0 cost)."""
    unit, counts = unit_of(name)
    if unit == "%":
        return 100.0 if direction == "maximize" else 0.0
    if (counts or unit == "ms") and direction == "minimize":
        return 0.0
    return None


def natural_worst(name: str, direction: str) -> float | None:
    """The worst value an objective can take, where its unit says (0% accuracy)."""
    if unit_of(name)[0] == "%":
        return 0.0 if direction == "maximize" else 100.0
    return None


def reference_box(
    values: np.ndarray, objectives: Sequence[Objective], margin: float = REFERENCE_MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """``(ideal, reference)`` for the points ``values`` ``(n, objectives)``, both rounded
    outward: the reference ``margin`` of each range beyond the worst point (but not past the
    objective's natural worst, :func:`natural_worst`), the ideal corner natural
    (:func:`natural_ideal`) or one range beyond the best point."""
    values = np.asarray(values, dtype=np.float64)
    signs = np.array([1.0 if o.direction == "minimize" else -1.0 for o in objectives])
    signed = values * signs
    worst, best = signed.max(axis=0), signed.min(axis=0)
    span = worst - best
    span = np.where(span > 0, span, np.maximum(np.abs(worst), 1.0))
    reference, ideal = [], []
    for i, o in enumerate(objectives):
        ref = nice_bound((worst[i] + margin * span[i]) * signs[i], o.direction)
        bound = natural_worst(o.name, o.direction)
        if bound is not None and ref * signs[i] > bound * signs[i]:
            ref = bound  # never past what the objective can be (below 0% accuracy)
        natural = natural_ideal(o.name, o.direction)
        if natural is None or natural * signs[i] > best[i]:
            flipped = "maximize" if o.direction == "minimize" else "minimize"
            natural = nice_bound((best[i] - span[i]) * signs[i], flipped)
        reference.append(ref)
        ideal.append(natural)
    return np.array(ideal), np.array(reference)


def box_volume(ideal: np.ndarray, reference: np.ndarray) -> float:
    """Volume of the reference box (objective units)."""
    return float(np.prod(np.abs(np.asarray(reference) - np.asarray(ideal))))


def normalized_trace(
    values: np.ndarray,
    directions: Sequence[str],
    ideal: np.ndarray,
    reference: np.ndarray,
) -> np.ndarray:
    """Share of the box dominated by the first k points, k = 1..n (points beyond the ideal
    corner count up to it)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(0)
    signs = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    clipped = np.maximum(values * signs, np.asarray(ideal) * signs) * signs
    volume = box_volume(ideal, reference)
    trace = hypervolume_trace(clipped, directions, reference)
    return trace / volume if volume > 0 else np.zeros(len(values))


def hypervolume_info(
    results: pd.DataFrame,
    objectives: Sequence[Objective | tuple[str, str]],
    reference: Sequence[float] | None = None,
    *,
    ideal: Sequence[float] | None = None,
) -> HypervolumeInfo:
    """The hypervolume after each evaluation; ``reference`` and ``ideal`` default to
    :func:`reference_box` of all completed feasible results."""
    specs = objective_specs(objectives)
    names, directions = [o.name for o in specs], [o.direction for o in specs]
    done, feasible = done_and_feasible(results, names)
    ok = (done & feasible).to_numpy()
    values = results[names].to_numpy(dtype=np.float64)
    n = len(results)
    if ok.any():
        auto_ideal, auto_ref = reference_box(values[ok], specs)
    else:
        auto_ideal = auto_ref = np.full(len(names), np.nan)
    ref = np.asarray(reference if reference is not None else auto_ref, dtype=np.float64)
    low = np.asarray(ideal if ideal is not None else auto_ideal, dtype=np.float64)
    raw, share = np.zeros(n), np.zeros(n)
    if ok.any() and np.all(np.isfinite(ref)):
        raw[ok] = hypervolume_trace(values[ok], directions, ref)
        share[ok] = normalized_trace(values[ok], directions, low, ref)
    return HypervolumeInfo(
        np.arange(1, n + 1),
        np.maximum.accumulate(raw) if n else raw,
        np.maximum.accumulate(share) if n else share,
        ref,
        low,
    )


def hypervolume_title(
    reference: Sequence[float] | None, names: Sequence[str] | None = None, moved: str = ""
) -> str:
    """``Hypervolume (share of the reference box) — reference: accuracy 52%, MACs 120k``."""
    title = "Hypervolume (share of the reference box)"
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)
    if ref is None or not np.all(np.isfinite(ref)):
        return title
    names = list(names) if names is not None else [f"#{i}" for i in range(len(ref))]
    where = ", ".join(labelled(n, v) for n, v in zip(names, ref, strict=True))
    return f"{title} — reference: {where}" + (f" ({moved})" if moved else "")


def hover_template() -> str:
    """Hover of the curve: the share and the raw hypervolume (in ``customdata``)."""
    return "evaluation %{x}: %{y:.3f} of the box<br>raw %{customdata}<extra></extra>"


def raw_labels(raw: Sequence[float]) -> list[str]:
    """Raw hypervolumes as hover text (SI prefixes)."""
    return [si(v) for v in raw]


def hypervolume_plot(info: HypervolumeInfo, *, names: Sequence[str] | None = None) -> Figure:
    """Draws a :class:`HypervolumeInfo`: the share of the box, the raw value on hover."""
    fig = Figure()
    fig.add_scatter(
        **HYPERVOLUME_STYLE,
        x=info.evaluations,
        y=info.normalized,
        customdata=raw_labels(info.hypervolume),
        hovertemplate=hover_template(),
    )
    fig.update_layout(
        template="nasviz",
        title=hypervolume_title(info.reference, names),
        xaxis_title="evaluations",
        yaxis={"title": {"text": "share of the reference box"}, "range": [0, 1.02]},
        height=300,
    )
    return fig


def hypervolume_figure(
    results: pd.DataFrame | HypervolumeInfo,
    objectives: Sequence[Objective | tuple[str, str]] | None = None,
    *,
    reference: Sequence[float] | None = None,
) -> Figure:
    """The hypervolume curve of a search's ``results`` (share of the reference box; the raw
    value on hover). ``hypervolume_figure(info)`` (previous release) still works, warning."""
    if old_info_call(
        "hypervolume_figure", results, HypervolumeInfo, "hypervolume_figure(results, objectives)"
    ):
        return hypervolume_plot(results)
    if objectives is None:
        from nasviz.errors import ConfigError

        raise ConfigError("hypervolume_figure(results, objectives) needs the objectives")
    specs = objective_specs(objectives)
    return hypervolume_plot(
        hypervolume_info(results, specs, reference), names=[o.name for o in specs]
    )
