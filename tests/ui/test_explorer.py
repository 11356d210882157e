"""ParetoExplorer: clicking, lasso, budgets, pinning, export and latency in the kernel."""

from __future__ import annotations

import pytest
import torch
from plotly.callbacks import Points
from ui_helpers import SPACE, make_search

from nasviz import ConfigError, macs, params
from nasviz.search import Search
from nasviz.supernet import ElasticMLP, load_subnet
from nasviz.ui import ParetoExplorer


def _click(explorer, trace_index, point_index):
    trace = explorer.figure.data[trace_index]
    points = Points(
        point_inds=[point_index],
        xs=[trace.x[point_index]],
        ys=[trace.y[point_index]],
        trace_name=trace.name,
        trace_index=trace_index,
    )
    trace._dispatch_on_click(points, None)


@pytest.fixture(scope="module")
def finished():
    search = make_search(budget=40)
    search.start().wait(60)
    return search


def test_clicking_a_point_shows_exactly_that_arch(finished):
    explorer = ParetoExplorer(finished)
    front_trace = explorer.figure.data[1]
    _click(explorer, 1, 0)
    trial = int(front_trace.customdata[0])
    row = finished.results.set_index("trial").loc[trial]
    assert explorer.selected == [trial]
    assert f"trial {trial}" in explorer.details.value
    assert f"{row['loss']:.5g}" in explorer.details.value
    view = explorer.arch_box.children[0]
    assert view.layout.title.text.startswith(f"trial {trial}")
    assert explorer.selected_arch() == {name: int(row[name]) for name in SPACE.names}


def test_lasso_selects_several_and_pins_at_most_four(finished):
    explorer = ParetoExplorer(finished)
    trace = explorer.figure.data[0]
    points = Points(
        point_inds=[0, 1, 2, 3, 4],
        xs=list(trace.x[:5]),
        ys=list(trace.y[:5]),
        trace_name="evaluated",
        trace_index=0,
    )
    trace._dispatch_on_selection(points, None)
    assert len(explorer.selected) == 5 and "5 selected" in explorer.details.value
    with pytest.raises(ConfigError, match="at most 4 pinned"):
        explorer.pin()
    explorer.select(explorer.selected[:3])
    explorer.pin()
    assert len(explorer.pinned) == 3 and "pinned" in explorer.pinned_box.value
    explorer.buttons["unpin"].click()
    assert explorer.pinned == [] and explorer.pinned_box.value == ""


def test_budget_sliders_move_the_best_feasible_arch(finished):
    explorer = ParetoExplorer(finished)
    results = finished.results
    assert explorer.best == int(
        results.loc[results["loss"].idxmin(), "trial"]
    )  # no budget: best loss
    cost_budget = float(results["cost"].median())
    explorer.sliders["cost"].value = cost_budget  # dragging the slider re-highlights
    fits = results[results["cost"] <= cost_budget + 1e-12]
    assert explorer.best == int(fits.loc[fits["loss"].idxmin(), "trial"])
    star = explorer.figure.data[2]
    assert star.x[0] == pytest.approx(fits["loss"].min())
    explorer.sliders["cost"].value = explorer.sliders["cost"].min - 1
    assert (
        explorer.best is None
        or results.set_index("trial").loc[explorer.best, "cost"]
        <= explorer.sliders["cost"].value + 1e-9
    )


def test_front_table_sorts(finished):
    explorer = ParetoExplorer(finished)
    front = explorer.front()
    assert sorted(front["trial"]) == sorted(finished.pareto()["trial"])
    assert list(front["loss"]) == sorted(front["loss"])
    explorer.sort_picker.value = "cost"
    explorer.sort_desc.value = True
    assert list(explorer.front()["cost"]) == sorted(front["cost"], reverse=True)
    assert str(explorer.front()["trial"].iloc[0]) in explorer.table.value


def test_works_from_a_saved_results_table(finished, tmp_path):
    path = tmp_path / "results.csv"
    finished.results.to_csv(path, index=False)
    import pandas as pd

    explorer = ParetoExplorer(
        pd.read_csv(path), objectives=[("loss", "minimize"), ("cost", "minimize")], space=SPACE
    )
    assert sorted(explorer.front()["trial"]) == sorted(finished.pareto()["trial"])
    with pytest.raises(ConfigError, match="needs objectives"):
        ParetoExplorer(pd.read_csv(path))
    _click(explorer, 1, 0)
    explorer.buttons["export"].click()  # no supernet: the widget says so
    assert "needs the supernet" in explorer.action_out.value


def test_latency_and_export_run_in_the_kernel(tmp_path):
    torch.manual_seed(0)
    net = ElasticMLP()
    search = Search(
        net,
        objectives=[params(), macs((1, 64))],
        strategy="random",
        budget=8,
        storage=":memory:",
        seed=0,
    )
    search.start().wait(60)
    explorer = ParetoExplorer(search, net=net, latency_input=(1, 64))
    _click(explorer, 1, 0)
    arch = explorer.selected_arch()
    explorer.buttons["latency"].click()
    trial = explorer.selected[0]
    assert explorer.measured[trial] > 0 and "ms median" in explorer.action_out.value
    explorer.path_box.value = str(tmp_path / "best.pt")
    explorer.buttons["export"].click()
    x = torch.randn(5, 64)
    with net.subnet(arch), torch.no_grad():
        expected = net(x)
    with torch.no_grad():
        assert torch.allclose(explorer.exported(x), expected, atol=1e-5)
        assert torch.allclose(load_subnet(tmp_path / "best.pt")(x), expected, atol=1e-5)
