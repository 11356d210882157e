"""Pure figure builders: assertions on the info records, then on the drawn figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nasviz import ConfigError
from nasviz.search import hypervolume
from nasviz.viz._pareto import (
    hypervolume_figure,
    hypervolume_info,
    pareto_figure,
    pareto_info,
    predictor_figure,
    predictor_info,
)

OBJ = [("accuracy", "maximize"), ("macs", "minimize")]


def _table():
    rows = [
        # trial, accuracy, macs, state, feasible, width
        (0, 90.0, 100.0, "COMPLETE", True, 8),
        (1, 95.0, 300.0, "COMPLETE", True, 16),
        (2, 85.0, 300.0, "COMPLETE", True, 16),  # dominated by 1 (and 0)
        (3, 97.0, 900.0, "COMPLETE", True, 32),
        (4, np.nan, np.nan, "FAIL", False, 32),
        (5, 99.0, 50.0, "COMPLETE", False, 8),  # would dominate everything, but infeasible
        (6, 92.0, 200.0, "COMPLETE", True, 8),
    ]
    return pd.DataFrame(rows, columns=["trial", "accuracy", "macs", "state", "feasible", "width"])


def _brute_front(points, signs):
    p = points * signs
    return [
        i
        for i in range(len(p))
        if not any(np.all(p[j] <= p[i]) and np.any(p[j] < p[i]) for j in range(len(p)))
    ]


def test_pareto_info_marks_front_failed_and_infeasible():
    info = pareto_info(_table(), OBJ, x="macs", y="accuracy")
    assert list(info.trials) == [0, 1, 2, 3, 6]
    assert set(info.trials[info.front]) == {0, 1, 3, 6}
    assert list(info.front_order) == [0, 6, 1, 3]  # sorted along x (macs)
    assert list(info.failed) == [4] and list(info.infeasible) == [5]
    assert "width=16" in info.hover[1] and "accuracy=95" in info.hover[1]


def test_pareto_front_matches_brute_force_on_random_tables():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        frame = pd.DataFrame(
            {
                "trial": range(n),
                "a": rng.integers(0, 10, n).astype(float),
                "b": rng.integers(0, 10, n).astype(float),
                "state": "COMPLETE",
                "feasible": True,
            }
        )
        info = pareto_info(frame, [("a", "maximize"), ("b", "minimize")])
        expected = _brute_front(frame[["a", "b"]].to_numpy(), np.array([-1.0, 1.0]))
        assert set(np.flatnonzero(info.front)) == set(expected)


def test_pareto_figure_draws_faded_points_and_connected_front():
    fig = pareto_figure(pareto_info(_table(), OBJ, x="macs", y="accuracy"))
    dominated, front = fig.data[0], fig.data[1]
    assert list(dominated.customdata) == [2] and dominated.marker.opacity < 1
    assert list(front.customdata) == [0, 6, 1, 3] and front.mode == "lines+markers"
    assert "1 failed" in fig.layout.title.text and "1 infeasible" in fig.layout.title.text
    assert (
        fig.layout.xaxis.title.text == "macs (↓ better)"
        and fig.layout.yaxis.title.text == "accuracy (↑ better)"
    )


def test_third_objective_colours_points_and_bad_axes_are_errors():
    table = _table().assign(latency=np.arange(7.0))
    objectives = [*OBJ, ("latency", "minimize")]
    info = pareto_info(table, objectives)
    assert info.color == "latency" and list(info.colors) == [0.0, 1.0, 2.0, 3.0, 6.0]
    with pytest.raises(ConfigError, match="x axis 'depth' is not an objective"):
        pareto_info(table, objectives, x="depth")
    with pytest.raises(ConfigError, match="at least two objectives"):
        pareto_info(table, OBJ[:1])


def test_hypervolume_info_is_monotone_and_ends_at_the_hypervolume():
    table = _table()
    info = hypervolume_info(table, OBJ, reference=[80.0, 1000.0])
    assert len(info.evaluations) == 7 and np.all(np.diff(info.hypervolume) >= 0)
    ok = table[(table.state == "COMPLETE") & table.feasible]
    expected = hypervolume(
        ok[["accuracy", "macs"]].to_numpy(), ["maximize", "minimize"], [80.0, 1000.0]
    )
    assert info.hypervolume[-1] == pytest.approx(expected)
    assert info.hypervolume[4] == info.hypervolume[3]  # the failed trial adds nothing
    assert list(hypervolume_figure(info).data[0].y) == list(info.hypervolume)


def test_predictor_info_reads_cycles():
    cycles = pd.DataFrame(
        {
            "cycle": [1, 2],
            "accuracy_kendall_tau": [0.2, 0.6],
            "accuracy_mape": [5.0, 2.0],
            "accuracy_predicted": [[90.0, 91.0], [95.0]],
            "accuracy_measured": [[89.0, 92.0], [94.0]],
        }
    )
    info = predictor_info(cycles)
    assert list(info.tau["accuracy"]) == [0.2, 0.6] and list(info.predicted["accuracy"]) == [
        90.0,
        91.0,
        95.0,
    ]
    fig = predictor_figure(info)
    assert list(fig.data[0].y) == [0.2, 0.6] and list(fig.data[1].x) == [89.0, 92.0, 94.0]
    assert predictor_info(pd.DataFrame()).cycles.size == 0
