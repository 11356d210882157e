"""The dashboard's live hypervolume curve: values per evaluation and a reference point that moves
seldom while a search runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from nasviz.errors import ConfigError
from nasviz.objectives import Objective
from nasviz.search import default_reference, hypervolume, pareto_mask
from nasviz.search._pareto import REFERENCE_MARGIN
from nasviz.viz._pareto import hypervolume_info

__all__ = ["LiveHypervolume"]

#: While a search runs, the automatic reference point sits this share of each objective's range
#: beyond the nadir (the search's own default is 10%), so that it seldom moves: every move
#: changes the whole curve, which must then be sent again. When the run ends it snaps to the
#: search's default, ``Search.reference_point()``.
RUNNING_MARGIN = 0.5


class LiveHypervolume:
    """Hypervolume after each evaluation (failures count as evaluations), kept up to date as
    results arrive; ``redraw`` says when the whole curve changed (the reference point moved).

    Contract: used from one thread at a time (the dashboard's flush).
    """

    def __init__(self, objectives: Sequence[Objective]):
        self.objectives = list(objectives)
        self.directions = [o.direction for o in self.objectives]
        self._signs = np.array([1.0 if d == "minimize" else -1.0 for d in self.directions])
        self.values: list[float] = []
        self.reference: np.ndarray | None = None
        self.fixed = False
        self.redraw = False
        self._stale = False

    def fix(self, reference: Sequence[float]) -> None:
        """Uses ``reference`` (objective units) from now on; the curve is recomputed."""
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != (len(self.objectives),) or not np.all(np.isfinite(ref)):
            raise ConfigError(
                f"the reference point needs {len(self.objectives)} finite values, got {list(reference)}"
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
            final: the run has ended (the automatic reference snaps to the search's default).
        """
        if len(points) == 0:
            self.values.extend([0.0] * n_new)
            return
        if n_new == 0 and not (self._stale or final) and self.reference is not None:
            return  # a clock tick: the points, and so the reference and the curve, are unchanged
        ref = self.reference
        if not self.fixed:
            exact = default_reference(points, self.directions)
            if final:
                ref = exact
            elif ref is None or np.any(exact * self._signs > ref * self._signs):
                span = np.ptp(points, axis=0)
                span = np.where(span > 0, span, 1.0)
                ref = exact + self._signs * (RUNNING_MARGIN - REFERENCE_MARGIN) * span
        moved = self.reference is None or not np.array_equal(ref, self.reference)
        if moved or self._stale:
            self.reference, self._stale, self.redraw = ref, False, True
            self.values = hypervolume_info(frame(), self.objectives, ref).hypervolume.tolist()
            return
        front = points[pareto_mask(points, self.directions)]
        self.values.extend([hypervolume(front, self.directions, ref)] * n_new)
