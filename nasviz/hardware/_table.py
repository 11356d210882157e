"""Latency tables: a subnet's latency as the sum of its blocks' measured latencies.

A :class:`LatencyTable` is built from a :class:`~nasviz.hardware.HardwareProfile` alone (no
supernet, no device): for each block it turns the profile's cases into a lookup array indexed by
the positions of the block's dims' values, so predicting any number of archs is a few numpy
gathers. :func:`latency_table` makes it a cheap search objective: a search computes it before
the expensive objectives and checks constraints on it before evaluating anything.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nasviz.errors import ConfigError, SpaceError
from nasviz.hardware._profile import HardwareProfile
from nasviz.objectives import Objective
from nasviz.space import Arch

__all__ = ["METHODS", "LatencyTable", "latency_table"]

METHODS = ("table", "learned")


class LatencyTable:
    """Predicts subnets' latencies (ms) from a profile: ``fixed_ms`` + the sum of the measured
    latencies of the blocks each subnet runs, with the choice it gives each.

    Args:
        profile: a measured (or loaded) :class:`~nasviz.hardware.HardwareProfile`.

    Raises:
        ConfigError: a block choice some arch can take has no finite figure in the profile (the
            message names the block and the choice), or a case names an unknown choice.

    Thread contract: immutable after construction; predictions may run from any thread.
    """

    def __init__(self, profile: HardwareProfile):
        self.profile = profile
        self.names = list(profile.space)
        self._values = [list(v) for v in profile.space.values()]
        self._index = [{_key(v): i for i, v in enumerate(vals)} for vals in self._values]
        self._numeric = [_numeric(vals) for vals in self._values]  # (order, sorted) or None
        position = {n: i for i, n in enumerate(self.names)}
        self._luts: list[tuple[str, list[int], np.ndarray, np.ndarray]] = []
        for block in profile.blocks:
            unknown = [d for d in block.dims if d not in position]
            if unknown:
                raise ConfigError(
                    f"block {block.name!r} depends on {unknown}, which are not dimensions of the "
                    f"profile's space {self.names}"
                )
            cols = [position[d] for d in block.dims]
            shape = tuple(len(self._values[c]) for c in cols)
            choice = np.full(shape, -2, dtype=np.int64)  # -2: case missing
            for values, i in block.cases:
                try:
                    at = tuple(self._index[c][_key(v)] for c, v in zip(cols, values, strict=True))
                except (KeyError, ValueError) as exc:
                    raise ConfigError(
                        f"block {block.name!r} has a case {values} outside the space's values"
                    ) from exc
                if not -1 <= i < len(block.choices):
                    raise ConfigError(f"block {block.name!r}: case {values} names choice {i}")
                choice[at] = i
            if (choice == -2).any():
                raise ConfigError(
                    f"block {block.name!r}: the profile does not say which choice some "
                    f"combinations of {list(block.dims)} give; measure the profile again"
                )
            ms = np.asarray(block.ms, dtype=np.float64)
            used = sorted({int(i) for i in np.unique(choice) if i >= 0})
            missing = [block.choices[i] for i in used if i >= len(ms) or not np.isfinite(ms[i])]
            if len(ms) != len(block.choices) or missing:
                raise ConfigError(
                    f"the latency table has no figure for block {block.name!r} choice(s) "
                    f"{missing or list(block.choices[len(ms) :])}; measure them (HardwareProfile"
                    ".measure) before predicting"
                )
            lut = np.where(choice >= 0, ms[np.clip(choice, 0, None)], 0.0)
            self._luts.append((block.name, cols, choice, lut))

    # ---- archs -> value positions --------------------------------------------------------
    def positions(self, archs: Sequence[Mapping[str, Any]] | pd.DataFrame) -> np.ndarray:
        """(n, dims) int matrix: the position of each arch's value in each dimension.

        ``archs``: mappings name -> value, or a DataFrame with one column per dimension.

        Raises:
            SpaceError: a dimension is missing or a value is not in the profile's space.
        """
        try:
            if isinstance(archs, pd.DataFrame):
                rows = list(archs[self.names].itertuples(index=False, name=None))
            else:
                get = operator.itemgetter(*self.names)
                one = len(self.names) == 1
                rows = [
                    (get(a.items().mapping if isinstance(a, Arch) else a),)
                    if one
                    else get(a.items().mapping if isinstance(a, Arch) else a)
                    for a in archs
                ]
        except KeyError as exc:
            missing = exc.args[0]
            raise SpaceError(
                f"an arch lacks the dimension(s) {missing}; the profile's space has {self.names}"
            ) from exc
        out = np.empty((len(rows), len(self.names)), dtype=np.int64)
        try:
            numbers = np.array(rows, dtype=np.float64).reshape(len(rows), len(self.names))
        except (TypeError, ValueError):
            numbers = None
        for j in range(len(self.names)):
            out[:, j] = self._positions(j, rows, numbers)
        return out

    def _positions(self, j: int, rows: list[tuple], numbers: np.ndarray | None) -> np.ndarray:
        values, known = self._values[j], self._numeric[j]
        if numbers is not None and known is not None:
            order, sorted_values = known
            wanted = numbers[:, j]
            at = np.clip(np.searchsorted(sorted_values, wanted), 0, len(values) - 1)
            bad = sorted_values[at] != wanted
            if not bad.any():
                return order[at]
            raise SpaceError(
                f"dimension {self.names[j]!r} allows {values}, got {rows[int(np.argmax(bad))][j]!r}"
            )
        index = self._index[j]
        try:
            return np.array([index[_key(r[j])] for r in rows], dtype=np.int64)
        except (KeyError, TypeError) as exc:
            raise SpaceError(
                f"dimension {self.names[j]!r} allows {values}, got {exc.args[0]!r}"
            ) from exc

    # ---- predictions ---------------------------------------------------------------------
    def parts_many(self, archs: Sequence[Mapping[str, Any]] | pd.DataFrame) -> np.ndarray:
        """(n, blocks) matrix: each arch's latency per block (0 where the block does not run)."""
        return self.parts_at(self.positions(archs))

    def parts_at(self, pos: np.ndarray) -> np.ndarray:
        """:meth:`parts_many` of archs given by their :meth:`positions`."""
        out = np.empty((len(pos), len(self._luts)), dtype=np.float64)
        for j, (_, cols, _, lut) in enumerate(self._luts):
            out[:, j] = lut[tuple(pos[:, cols].T)] if cols else lut
        return out

    def predict_many(self, archs: Sequence[Mapping[str, Any]] | pd.DataFrame) -> np.ndarray:
        """Predicted latencies (ms) of many archs at once (a DataFrame works too)."""
        return self.profile.fixed_ms + self.parts_many(archs).sum(axis=1)

    def predict(self, arch: Mapping[str, Any]) -> float:
        """Predicted latency (ms) of one arch."""
        return float(self.predict_many([one_arch(arch)])[0])

    def parts(self, arch: Mapping[str, Any]) -> pd.DataFrame:
        """The blocks ``arch`` runs: ``block``, ``choice`` (dict) and ``ms``; the prediction is
        ``fixed_ms`` plus the sum of ``ms``."""
        pos = self.positions([arch])[0]
        rows = []
        for block, (name, cols, choice, lut) in zip(self.profile.blocks, self._luts, strict=True):
            at = tuple(pos[cols])
            if choice[at] >= 0:
                rows.append({"block": name, "choice": block.choices[choice[at]], "ms": lut[at]})
        return pd.DataFrame(rows, columns=["block", "choice", "ms"])

    @property
    def block_names(self) -> list[str]:
        return [name for name, _, _, _ in self._luts]

    def __repr__(self) -> str:
        return f"LatencyTable({self.profile!r})"


def one_arch(arch: Any) -> Mapping[str, Any]:
    """``arch`` when it is one arch (a mapping), else a ConfigError pointing to predict_many."""
    if not (isinstance(arch, Mapping) or hasattr(arch, "keys")):  # (a DataFrame row works)
        raise ConfigError(
            f"predict takes one arch (a dict of dimension -> choice), got a "
            f"{type(arch).__name__}; for several archs use predict_many(archs)"
        )
    return arch


def _numeric(values: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """For a dimension of plain numbers: (argsort, sorted values as floats); else None."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    order = np.argsort(np.asarray(values, dtype=np.float64), kind="stable")
    return order, np.asarray(values, dtype=np.float64)[order]


def _key(value: Any) -> Any:
    """A dict key for a dimension value that tells True from 1 (numpy ints match ints)."""
    return ("bool", value) if isinstance(value, bool | np.bool_) else value


def latency_table(
    profile: HardwareProfile, *, method: str = "table", name: str = "latency_table"
) -> Objective:
    """A cheap objective (minimize, ms): a subnet's latency predicted from ``profile``.

    A :class:`~nasviz.search.Search` computes cheap objectives before the expensive ones and
    checks constraints on them (``constraints={"latency_table": 20.0}``) before evaluating:
    an arch predicted over budget is never evaluated.

    Args:
        profile: measured on the target device (here or elsewhere, then loaded).
        method: ``"table"`` (sum of the blocks' latencies plus ``fixed_ms``) or ``"learned"``
            (a :class:`~nasviz.hardware.LatencyPredictor` fitted on the profile's sampled
            subnets).
        name: the objective's (and results column's) name.

    The objective is ``objective(net, arch)``: ``net`` must be the supernet the profile was
    measured for (a ConfigError otherwise: another family, config or space) or None (a search
    over a function of the arch).
    """
    if not isinstance(profile, HardwareProfile):
        raise ConfigError(
            f"latency_table needs a HardwareProfile (measured or loaded), got {type(profile).__name__}"
        )
    if method not in METHODS:
        raise ConfigError(f"method must be one of {list(METHODS)}, got {method!r}")
    if method == "table":
        predict = profile.table().predict
    else:
        from nasviz.hardware._predictor import LatencyPredictor

        predict = LatencyPredictor.for_profile(profile).predict
    checked: weakref.WeakSet = weakref.WeakSet()  # supernets already checked against it

    def fn(model: Any, arch: Any) -> float:
        if arch is None:
            raise ConfigError(
                f"objective {name!r} predicts a subnet's latency: it needs an arch (and the "
                "supernet or None), e.g. objective(net, arch)"
            )
        if model is not None and model not in checked:
            profile.check(model)
            checked.add(model)
        return predict(arch)

    return Objective(name, "minimize", fn, cheap=True, unit="ms")
