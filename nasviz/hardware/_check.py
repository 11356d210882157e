"""Honest checks: the archs a search picked by predicted latency, measured for real.

A front chosen under ``latency_table <= 20 ms`` is only as good as the table. :func:`check_latency`
times each arch's exported subnet whole, under the profile's conditions (runtime, input shape,
threads, device), and puts the prediction next to the measurement, flagging the archs that
meet the bound on paper but not in reality.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from nasviz.errors import ConfigError, NasvizWarning, check_int, check_real
from nasviz.hardware._machine import Machine
from nasviz.hardware._profile import HardwareProfile

__all__ = ["check_latency"]

COLUMNS = [
    "predicted_ms",
    "measured_ms",
    "p10_ms",
    "p90_ms",
    "error_pct",
    "bound_ms",
    "predicted_ok",
    "measured_ok",
    "violated",
]


def check_latency(
    results: Any,
    net: Any,
    profile: HardwareProfile,
    *,
    bound: float | None = None,
    objective: str = "latency_table",
    method: str = "table",
    repeats: int | None = None,
    warmup: int | None = None,
    rounds: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Measures the archs of ``results`` for real and compares with their predicted latency.

    Args:
        results: a :class:`~nasviz.search.Search` (its Pareto front is checked) or a DataFrame
            with one column per dimension of the profile's space (e.g. ``search.pareto()``).
        net: the supernet the profile was measured for (its exports are timed).
        profile: the profile whose predictions are checked.
        bound: the latency budget (ms) the search was constrained to; None flags nothing.
        objective: the results column holding the predicted latency; when the column is
            absent the prediction is computed with ``method``.
        method: ``"table"`` or ``"learned"`` (see :func:`~nasviz.hardware.latency_table`).
        repeats, warmup, rounds: timing (None: the profile's), interleaved over the archs.
        seed: of the interleaving order.

    Returns:
        The rows of ``results`` (same index) with ``predicted_ms``, ``measured_ms``,
        ``p10_ms``, ``p90_ms``, ``error_pct`` (100 * (predicted - measured) / measured),
        ``bound_ms``, ``predicted_ok`` / ``measured_ok`` (within the bound; True without one)
        and ``violated`` (predicted within the bound, measured over it).

    A NasvizWarning says so when this machine is not the one the profile was measured on (the
    measurements are then of this machine). When the profile was normalized (it has a
    ``reference_ms``), so is the check: each arch is measured at this session's typical speed;
    a table from :meth:`HardwareProfile.rescaled` predicts for the machine's speed now, a
    table from the profile as measured for its speed then.
    """
    from nasviz.hardware._interleave import measure_interleaved
    from nasviz.hardware._runtime import resolve_device
    from nasviz.hardware._table import latency_table

    frame = results.pareto() if hasattr(results, "pareto") else results
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(
            f"results must be a Search or a DataFrame of archs, got {type(results).__name__}"
        )
    profile.check(net)
    missing = [n for n in profile.space if n not in frame.columns]
    if missing:
        raise ConfigError(
            f"results lack the dimension column(s) {missing} of the profile's space; pass "
            "search.pareto() or search.results"
        )
    if bound is not None:
        bound = check_real("bound (ms)", bound)
    timing = {
        "repeats": profile.repeats if repeats is None else check_int("repeats", repeats, 1),
        "warmup": profile.warmup if warmup is None else check_int("warmup", warmup, 0),
        "rounds": profile.rounds if rounds is None else check_int("rounds", rounds, 1),
    }
    device = resolve_device(profile.machine.device)
    here = Machine.current(device)
    if not here.same_hardware(profile.machine):
        warnings.warn(
            f"the profile was measured on {profile.machine}, this is {here}: the check "
            "measures this machine",
            NasvizWarning,
            stacklevel=2,
        )
    archs = [
        net.space.validate({n: _plain(row[n]) for n in profile.space})
        for _, row in frame.iterrows()
    ]
    if objective in frame.columns:
        predicted = frame[objective].to_numpy(dtype=np.float64)
    else:
        predict = latency_table(profile, method=method, name=objective)
        predicted = np.array([predict(net, a) for a in archs])
    unique = list(dict.fromkeys(archs))
    timed = measure_interleaved(
        [(a, net.export(a), profile.input_shape) for a in unique],
        runtime=profile.runtime,
        device=device,
        threads=profile.threads,
        seed=seed,
        normalize=profile.reference_ms is not None,
        **timing,
    ).times
    out = frame.copy()
    out["predicted_ms"] = predicted
    out["measured_ms"] = [float(np.median(timed[a])) for a in archs]
    out["p10_ms"] = [float(np.percentile(timed[a], 10)) for a in archs]
    out["p90_ms"] = [float(np.percentile(timed[a], 90)) for a in archs]
    out["error_pct"] = 100 * (out["predicted_ms"] - out["measured_ms"]) / out["measured_ms"]
    out["bound_ms"] = np.nan if bound is None else bound
    limit = np.inf if bound is None else bound
    out["predicted_ok"] = out["predicted_ms"] <= limit
    out["measured_ok"] = out["measured_ms"] <= limit
    out["violated"] = out["predicted_ok"] & ~out["measured_ok"]
    return out


def _plain(value: Any) -> Any:
    """A numpy scalar from a DataFrame cell as the Python value a space holds."""
    return value.item() if isinstance(value, np.generic) else value
