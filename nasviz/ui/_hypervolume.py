"""The dashboard's live hypervolume curve: the share of a reference box dominated after each
evaluation, with a reference point that is chosen once and then stays.

The point is chosen (:func:`nasviz.viz.reference_box`) after the first :data:`CHOOSE_AFTER`
completed evaluations, or when the run ends if it ended sooner; until then the curve is 0 and
the title says when it will be chosen. From then on it never moves by itself, so the curve never
rescales while the search runs (points worse than it add nothing, as in any hypervolume). The
user may set another one (:meth:`LiveHypervolume.fix`); the whole curve is then recomputed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from nasviz.errors import ConfigError
from nasviz.objectives import Objective
from nasviz.search import hypervolume, pareto_mask
from nasviz.viz import hypervolume_info, reference_box
from nasviz.viz._hypervolume import box_volume

__all__ = ["CHOOSE_AFTER", "LiveHypervolume"]

#: Completed evaluations seen before the automatic reference point is chosen.
CHOOSE_AFTER = 8


class LiveHypervolume:
    """Hypervolume after each evaluation (failures count as evaluations): ``values`` as a share
    of the reference box, ``raw`` in objective units; ``redraw`` says when the whole curve
    changed (the reference point was chosen or set).

    Contract: used from one thread at a time (the dashboard's flush).
    """

    def __init__(self, objectives: Sequence[Objective], choose_after: int = CHOOSE_AFTER):
        self.objectives = list(objectives)
        self.names = [o.name for o in self.objectives]
        self.directions = [o.direction for o in self.objectives]
        self._signs = np.array([1.0 if d == "minimize" else -1.0 for d in self.directions])
        self.choose_after = choose_after
        self.values: list[float] = []
        self.raw: list[float] = []
        self.reference: np.ndarray | None = None
        self.ideal: np.ndarray | None = None
        self.fixed = False  # set by the user
        self.redraw = False
        self._stale = False

    def fix(self, reference: Sequence[float]) -> None:
        """Uses ``reference`` (objective units) from now on; the curve is recomputed. It must
        be worse than the box's ideal corner in every objective."""
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != (len(self.objectives),) or not np.all(np.isfinite(ref)):
            raise ConfigError(
                f"the reference point needs {len(self.objectives)} finite values, got {list(reference)}"
            )
        if self.ideal is not None:
            corners = zip(self.names, ref, self.ideal, self._signs, strict=True)
            bad = [n for n, r, i, s in corners if r * s <= i * s]
            if bad:
                raise ConfigError(
                    f"the reference point must be worse than the best possible value in every "
                    f"objective; {bad} are not (best: {dict(zip(self.names, self.ideal.tolist(), strict=True))})"
                )
        self.reference, self.fixed, self._stale = ref, True, True

    def update(
        self,
        points: np.ndarray,
        n_new: int,
        frame: Callable[[], pd.DataFrame],
        final: bool = False,
    ) -> None:
        """Extends the curve by ``n_new`` evaluations.

        Args:
            points: every completed feasible point so far, ``(n, objectives)``.
            n_new: evaluations since the last update (failed ones included).
            frame: all results so far (called only when the whole curve is recomputed).
            final: the run has ended (a reference not chosen yet is chosen now).
        """
        if self.reference is None or self.ideal is None:
            enough = len(points) >= self.choose_after or ((final or self.fixed) and len(points))
            if not enough:
                self.values.extend([0.0] * n_new)
                self.raw.extend([0.0] * n_new)
                return
            ideal, ref = reference_box(points, self.objectives)
            self.ideal = ideal
            if self.reference is None:
                self.reference = ref
            self._stale = True
        if self._stale:
            self._stale, self.redraw = False, True
            info = hypervolume_info(frame(), self.objectives, self.reference, ideal=self.ideal)
            self.values, self.raw = info.normalized.tolist(), info.hypervolume.tolist()
            return
        if n_new == 0:
            return  # a clock tick: the points, and so the curve, are unchanged
        front = points[pareto_mask(points, self.directions)]
        raw = hypervolume(front, self.directions, self.reference)
        clipped = np.maximum(front * self._signs, self.ideal * self._signs) * self._signs
        volume = box_volume(self.ideal, self.reference)
        share = hypervolume(clipped, self.directions, self.reference) / volume if volume else 0.0
        self.values.extend([share] * n_new)
        self.raw.extend([raw] * n_new)

    @property
    def waiting(self) -> str:
        """Why there is no reference point yet ("" once there is one)."""
        if self.reference is not None:
            return ""
        return f"the reference point is chosen after {self.choose_after} evaluations"
