"""What a search shows: results, the Pareto front, hypervolume, predictor cycles and the
intermediate reports of multi-fidelity trials, all rebuilt from the Optuna study (so a search
loaded after a restart, or a study shared by several processes, shows every evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
import pandas as pd

from nasviz.objectives import Objective
from nasviz.search import _pareto
from nasviz.search._fidelity import reports_of
from nasviz.search._storage import RESULT_COLUMNS, is_result, trial_row
from nasviz.space import SearchSpace

__all__ = ["CYCLE_PREFIX", "ResultsView"]

CYCLE_PREFIX = "nasviz:cycle:"


class ResultsView:
    """Read-only views of a study's results (mixed into :class:`~nasviz.search.Search`).

    Needs ``study`` (an Optuna study), ``space`` and ``objectives``. Every method reads the
    study as it is now; none writes.
    """

    study: optuna.Study
    space: SearchSpace
    objectives: list[Objective]

    @property
    def results(self) -> pd.DataFrame:
        """One row per evaluation (this search's and any other search's on the study), in trial
        order. Columns:

        * ``trial`` (Optuna's trial number), ``state``: ``COMPLETE``, ``FAIL`` or ``PRUNED``
          (stopped early by the search's ``pruner``);
        * one column per dimension, one per objective (NaN when failed; for a pruned trial its
          last reported values);
        * ``feasible`` (COMPLETE and within the objective bounds), ``error``, ``traceback``,
          ``duration`` (s), ``worker`` (``host:pid:thread`` that ran the evaluation),
          ``searcher`` (``host:pid`` of the search process that claimed the trial: tells the
          processes of a shared study apart), ``step`` (the last step reported by a function
          that reports, NaN otherwise) and ``rung`` (the highest early-stopping rung it
          reached, NaN without a pruner);
        * then extra values the function returned.
        """
        rows = [
            trial_row(t, self.space, self.objectives)
            for t in self.study.get_trials(deepcopy=False)
            if is_result(t)
        ]
        names = [o.name for o in self.objectives]
        columns = [*RESULT_COLUMNS[:2], *self.space.names, *names, *RESULT_COLUMNS[2:]]
        frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
        return frame.sort_values("trial", kind="stable").reset_index(drop=True)

    @property
    def reports(self) -> pd.DataFrame:
        """Every intermediate report of functions that report (``fn(arch, report)``): one row
        per (trial, step), columns ``trial``, ``step``, then one per objective; trials of every
        state, in trial and step order (empty with those columns when nothing reported)."""
        names = [o.name for o in self.objectives]
        rows = [
            {"trial": t.number, "step": step, **dict(zip(names, values, strict=True))}
            for t in self.study.get_trials(deepcopy=False)
            for step, values in sorted(reports_of(t).items())
        ]
        return pd.DataFrame(rows, columns=["trial", "step", *names])

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    def _scored(self) -> pd.DataFrame:
        frame = self.results
        return frame[(frame["state"] == "COMPLETE") & frame["feasible"].astype(bool)]

    def pareto(self) -> pd.DataFrame:
        """The non-dominated rows among the completed, feasible ones (moocore)."""
        frame = self._scored()
        values = frame[[o.name for o in self.objectives]].to_numpy(dtype=np.float64)
        return frame[_pareto.pareto_mask(values, self.directions)]

    def reference_point(self) -> np.ndarray:
        """The default reference point: the nadir of all completed, feasible rows moved 10% of
        each objective's range further (see :mod:`nasviz.search._pareto`)."""
        frame = self._scored()
        return _pareto.default_reference(
            frame[[o.name for o in self.objectives]].to_numpy(dtype=np.float64), self.directions
        )

    def hypervolume(self, ref: Sequence[float] | None = None) -> float:
        """Hypervolume of the feasible completed rows up to ``ref`` (objective units; worse than
        every point: larger when minimizing, smaller when maximizing); ``ref=None`` uses
        :meth:`reference_point`. 0.0 when nothing completed."""
        frame = self._scored()
        if frame.empty:
            return 0.0
        values = frame[[o.name for o in self.objectives]].to_numpy(dtype=np.float64)
        ref = self.reference_point() if ref is None else ref
        return _pareto.hypervolume(values, self.directions, ref)

    def hypervolume_history(self, ref: Sequence[float] | None = None) -> pd.DataFrame:
        """Hypervolume after each evaluation (one reference point for the whole history):
        columns ``evaluations`` (1..n, failed and pruned ones included), ``trial`` and
        ``hypervolume``."""
        frame = self.results
        ok = (frame["state"] == "COMPLETE") & frame["feasible"].astype(bool)
        if not ok.any():
            return pd.DataFrame(
                {
                    "evaluations": np.arange(1, len(frame) + 1),
                    "trial": frame["trial"],
                    "hypervolume": 0.0,
                }
            )
        values = frame[[o.name for o in self.objectives]].to_numpy(dtype=np.float64)
        ref = self.reference_point() if ref is None else ref
        trace = np.zeros(len(frame))
        trace[ok.to_numpy()] = _pareto.hypervolume_trace(
            values[ok.to_numpy()], self.directions, ref
        )
        trace = np.maximum.accumulate(trace)
        return pd.DataFrame(
            {
                "evaluations": np.arange(1, len(frame) + 1),
                "trial": frame["trial"],
                "hypervolume": trace,
            }
        )

    @property
    def cycles(self) -> pd.DataFrame:
        """Predictor quality per cycle (predictor strategy): one row per cycle with ``cycle``,
        ``trained_on`` (evaluations it was fitted on), ``held_out`` and, per predicted objective
        ``<name>``: ``<name>_kendall_tau`` and ``<name>_mape`` on the next batch (held out: those
        archs were not in its training set), and ``<name>_predicted`` / ``<name>_measured``,
        lists of floats holding the predictions and the measured values of that batch, in the
        same order."""
        rows = [v for k, v in sorted(self.study.user_attrs.items()) if k.startswith(CYCLE_PREFIX)]
        return pd.DataFrame(rows)
