"""Pure figure builders: assertions on the info records, then on the drawn figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nasviz import ConfigError
from nasviz.search import hypervolume
from nasviz.viz import (
    ParetoInfo,
    hypervolume_figure,
    hypervolume_info,
    pareto_figure,
    pareto_info,
    pareto_plot,
    predictor_figure,
    predictor_info,
    predictor_plot,
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
    # hover: readable values with units
    assert "width=16" in info.hover[1] and "accuracy 95%" in info.hover[1]
    assert "MACs 300" in info.hover[1]


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
    fig = pareto_figure(_table(), OBJ, x="macs", y="accuracy")  # one call: info computed inside
    dominated, front = fig.data[0], fig.data[1]
    assert list(dominated.customdata) == [2] and dominated.marker.opacity < 1
    assert list(front.customdata) == [0, 6, 1, 3] and front.mode == "lines+markers"
    assert "1 failed" in fig.layout.title.text and "1 infeasible" in fig.layout.title.text
    # units on the axes, SI ticks for counts
    assert fig.layout.xaxis.title.text == "MACs (↓ better)" and fig.layout.xaxis.tickformat == "~s"
    assert fig.layout.yaxis.title.text == "accuracy (%, ↑ better)"
    assert fig.layout.clickmode == "event"  # a click never selects (and dims) the other points
    info = pareto_info(_table(), OBJ, x="macs", y="accuracy")
    assert pareto_plot(info).to_json() == fig.to_json()  # the split stays for tests


def test_the_previous_releases_calls_still_work_with_a_future_warning():
    info = pareto_info(_table(), OBJ, x="macs", y="accuracy")
    with pytest.warns(FutureWarning, match=r"pareto_figure\(ParetoInfo\) is deprecated"):
        old = pareto_figure(info, "mine")
    assert old.layout.title.text.startswith("mine —")
    with pytest.warns(FutureWarning, match=r"pass x=\.\.\., y=\.\.\. by keyword"):
        positional = pareto_info(_table(), OBJ, "macs", "accuracy")
    assert isinstance(positional, ParetoInfo) and positional.x == "macs"
    assert list(positional.front_order) == list(info.front_order)
    with pytest.raises(ConfigError, match="needs the objectives"):
        pareto_figure(_table())


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
    # normalized: the share of the box from the natural ideal (100%, 0 MACs) to the reference
    assert list(info.ideal) == [100.0, 0.0]
    assert info.normalized[-1] == pytest.approx(expected / ((100 - 80) * 1000))
    fig = hypervolume_figure(table, OBJ, reference=[80.0, 1000.0])
    assert list(fig.data[0].y) == list(info.normalized) and max(fig.data[0].y) <= 1
    assert fig.data[0].customdata[-1] == f"{expected / 1000:.3g}k"  # the raw value on hover
    assert "reference: accuracy 80%, MACs 1k" in fig.layout.title.text


def test_automatic_reference_box_is_round_and_bounds_every_point():
    table = pd.DataFrame(
        {"trial": range(4), "loss": [0.123456, 0.2, 0.35, 0.5], "macs": [9472.0, 4e3, 2e3, 1e3]}
    )
    objectives = [("loss", "minimize"), ("macs", "minimize")]
    info = hypervolume_info(table, objectives)
    # loss: no natural bound, so the ideal is one range below the best; macs' ideal is 0
    assert list(info.reference) == [0.689, 13800.0] and list(info.ideal) == [-0.254, 0.0]
    assert np.all(np.diff(info.normalized) >= 0) and 0 < info.normalized[-1] < 1


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
    fig = predictor_figure(cycles)
    assert list(fig.data[0].y) == [0.2, 0.6] and list(fig.data[1].x) == [89.0, 92.0, 94.0]
    assert fig.layout.xaxis2.title.text == "measured accuracy (%)"
    assert not [a for a in fig.layout.annotations if "first cycle" in a.text]
    empty = predictor_info(pd.DataFrame())
    assert empty.cycles.size == 0
    # before the first cycle each panel says what it waits for
    notes = [a.text for a in predictor_plot(empty).layout.annotations if "first cycle" in a.text]
    assert len(notes) == 2
