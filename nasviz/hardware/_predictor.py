"""A learned latency predictor (HAT style) on top of a latency table.

It learns what the table's sum misses: the residual ``measured - sum of blocks`` of whole
subnets, from features of the arch (the table's sum, how many blocks run and the positions of
its values in each dimension: the arch's encoding) with a ridge regression whose strength is chosen by
leave-one-out cross-validation (scikit-learn ``RidgeCV``). With little data the ridge shrinks
towards a constant residual, which is the table's own prediction; with more it corrects how
blocks interact on the device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nasviz.errors import ConfigError
from nasviz.hardware._profile import HardwareProfile
from nasviz.hardware._table import LatencyTable, one_arch

__all__ = ["LatencyPredictor"]

#: fewest measured subnets a predictor is fitted on
MIN_SAMPLES = 3


class LatencyPredictor:
    """``table sum + ridge(features)``, fitted on measured whole subnets.

    Args:
        table: the :class:`LatencyTable` whose sums it corrects.

    Thread contract: fit in one thread; after fitting, predictions may run from any thread.
    """

    def __init__(self, table: LatencyTable):
        self.table = table
        self._model: Any = None
        self._sizes = np.array([max(len(v) - 1, 1) for v in table.profile.space.values()])

    @classmethod
    def for_profile(cls, profile: HardwareProfile) -> LatencyPredictor:
        """A predictor fitted on the subnets the profile timed whole (``profile.samples``)."""
        archs = [a for a, _ in profile.samples]
        return cls(profile.table()).fit(archs, [m for _, m in profile.samples])

    def _features(self, archs: Sequence[Mapping[str, Any]] | pd.DataFrame) -> tuple[Any, Any]:
        pos = self.table.positions(archs)  # (n, dims)
        parts = self.table.parts_at(pos)  # (n, blocks)
        positions = pos / self._sizes  # (n, dims) in [0, 1]
        running = (parts > 0).sum(axis=1, keepdims=True)  # (n, 1)
        sums = parts.sum(axis=1)  # (n,)
        # not the parts one by one: collinear with the sum, a block whose figure never varied
        # in training would have its share of the sum dropped when it varies later
        return np.hstack([sums[:, None], running, positions]), sums

    def fit(
        self, archs: Sequence[Mapping[str, Any]] | pd.DataFrame, measured_ms: Sequence[float]
    ) -> LatencyPredictor:
        """Fits on archs and their measured latencies (ms); returns self."""
        y = np.asarray(measured_ms, dtype=np.float64)
        if len(archs) != len(y) or len(y) < MIN_SAMPLES or not np.isfinite(y).all():
            raise ConfigError(
                f"a latency predictor needs >= {MIN_SAMPLES} archs with as many finite measured "
                f"latencies; got {len(archs)} archs and {len(y)} latencies (measure a profile "
                f"with samples >= {MIN_SAMPLES})"
            )
        features, sums = self._features(archs)
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
        self._model = model.fit(features, y - sums)
        return self

    def predict_many(self, archs: Sequence[Mapping[str, Any]] | pd.DataFrame) -> np.ndarray:
        """Predicted latencies (ms) of many archs."""
        if self._model is None:
            raise ConfigError("this LatencyPredictor is not fitted; call fit(archs, measured_ms)")
        features, sums = self._features(archs)
        return sums + self._model.predict(features)

    def predict(self, arch: Mapping[str, Any]) -> float:
        """Predicted latency (ms) of one arch."""
        return float(self.predict_many([one_arch(arch)])[0])
