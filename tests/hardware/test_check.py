"""Honest checks: predicted vs measured latency, violations in reality, the figure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nasviz.errors import ConfigError, NasvizWarning
from nasviz.hardware import check_latency, latency_table
from nasviz.search import Search
from nasviz.viz import latency_check_figure, latency_check_info


def _scaled(profile, factor):
    """The profile with every block figure and the fixed part multiplied by ``factor``."""
    blocks = tuple(
        dataclasses.replace(b, ms=tuple(m * factor for m in b.ms)) for b in profile.blocks
    )
    return dataclasses.replace(profile, blocks=blocks, fixed_ms=profile.fixed_ms * factor)


def test_archs_under_budget_on_paper_but_over_it_in_reality_are_flagged(cnn_profile):
    net, profile = cnn_profile
    optimistic = _scaled(profile, 1e-9)  # predicts ~0 ms: every arch fits any budget on paper
    archs = pd.DataFrame([dict(a) for a in net.sample(5, n=3)])
    check = check_latency(archs, net, optimistic, bound=1e-6, repeats=2, warmup=0, rounds=1)
    assert list(check.index) == list(archs.index) and (check.measured_ms > 0).all()
    assert check.predicted_ok.all() and not check.measured_ok.any() and check.violated.all()
    assert (check.p10_ms <= check.measured_ms).all() and (check.measured_ms <= check.p90_ms).all()
    np.testing.assert_allclose(
        check.error_pct, 100 * (check.predicted_ms - check.measured_ms) / check.measured_ms
    )
    relaxed = check_latency(archs, net, optimistic, bound=1e9, repeats=1, warmup=0, rounds=1)
    assert relaxed.measured_ok.all() and not relaxed.violated.any()
    info = latency_check_info(check)
    assert info.violated.all() and info.bound == 1e-6 and len(info.hover) == 3
    assert "kernel.0 = " in info.hover[0] and "3 over the 1e-06 ms budget" in info.title
    assert info.mape == pytest.approx(np.mean(np.abs(check.error_pct)))
    figure = latency_check_figure(info)
    crosses = [t for t in figure.data if t.name == "over budget in reality"]
    assert len(crosses) == 1 and len(crosses[0].x) == 3
    assert not [t for t in figure.data if t.name == "as predicted"]


def test_a_search_front_is_checked_with_the_predictions_it_was_chosen_by(cnn_profile):
    net, profile = cnn_profile
    search = Search(
        net,
        objectives=[latency_table(profile)],
        strategy="random",
        budget=6,
        storage=":memory:",
        seed=0,
    )
    search.start().wait()
    check = check_latency(search, net, profile, repeats=1, warmup=0, rounds=1)
    front = search.pareto()
    assert list(check.index) == list(front.index)
    np.testing.assert_allclose(check.predicted_ms, front.latency_table)
    assert check.bound_ms.isna().all() and not check.violated.any()
    info = latency_check_info(check)
    assert info.bound is None and "budget" not in info.title


def test_checks_refuse_what_they_cannot_check_and_warn_on_another_machine(cnn_profile):
    net, profile = cnn_profile
    archs = pd.DataFrame([dict(net.sample(0))])
    with pytest.raises(ConfigError, match=r"lack the dimension column\(s\) \['kernel.0'"):
        check_latency(archs.drop(columns=["kernel.0"]), net, profile)
    with pytest.raises(ConfigError, match="results must be a Search or a DataFrame"):
        check_latency([dict(net.sample(0))], net, profile)
    elsewhere = dataclasses.replace(
        profile, machine=dataclasses.replace(profile.machine, cpu="Some Phone SoC")
    )
    with pytest.warns(NasvizWarning, match="measured on Some Phone SoC"):
        check_latency(archs, net, elsewhere, repeats=1, warmup=0, rounds=1)
    with pytest.raises(ConfigError, match="needs check_latency's columns"):
        latency_check_info(archs)


def test_the_explorer_checks_the_front_on_hardware_and_crosses_out_violations(cnn_profile):
    """The search chose by an optimistic table under a 1 ns bound: every front arch fits on
    paper and none in reality, and the explorer says so (details, table, crosses)."""
    from nasviz.objectives import Objective, count_params
    from nasviz.ui import ParetoExplorer

    net, profile = cnn_profile
    optimistic = _scaled(profile, 1e-9)
    capacity = Objective("capacity", "maximize", lambda net, arch: count_params(net.export(arch)))
    search = Search(
        net,
        objectives=[latency_table(optimistic), capacity],
        strategy="random",
        budget=8,
        storage=":memory:",
        seed=0,
        constraints={"latency_table": 1e-6},
    )
    search.start().wait()
    explorer = ParetoExplorer(search, profile=optimistic)
    assert explorer.latency_bound == 1e-6  # the search's constraint
    assert explorer.violated() == [] and len(explorer.figure.data[4].x) == 0
    summary = explorer.check_front(repeats=1)
    front = explorer.front(within_budget=False)
    assert sorted(explorer.violated()) == sorted(front["trial"]) and len(front) >= 2
    assert f"{len(front)} within the" in summary and "over it in reality" in summary
    assert set(explorer.measured) == set(front["trial"])
    assert (explorer.latency_check["measured_ms"] > 0).all()
    crosses = explorer.figure.data[4]
    assert sorted(zip(crosses.x, crosses.y, strict=True)) == sorted(
        zip(front[explorer.info.x], front[explorer.info.y], strict=True)
    )
    assert len(explorer.static_figure().data[4].x) == len(front)  # a saved report shows them
    assert "front on hardware" in explorer.check_out.value
    explorer.select([int(front["trial"].iloc[0])])
    assert "over it in reality" in explorer.details.value
    assert "latency predicted / measured" in explorer.details.value

    relaxed = ParetoExplorer(search, profile=optimistic, latency_bound=1e9)
    assert "over it in reality" not in relaxed.check_front(repeats=1) and not relaxed.violated()
    assert len(relaxed.figure.data[4].x) == 0

    plain = ParetoExplorer(search)
    assert plain.buttons["check"].layout.display == "none"
    with pytest.raises(ConfigError, match=r"needs ParetoExplorer\(\.\.\., profile=profile\)"):
        plain.check_front()
    with pytest.raises(ConfigError, match="profile must be a nasviz.hardware.HardwareProfile"):
        ParetoExplorer(search, profile="cpu.json")
