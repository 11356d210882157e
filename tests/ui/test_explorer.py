"""ParetoExplorer: clicking, lasso, budgets, pinning, export and latency in the kernel."""

from __future__ import annotations

import pytest
import torch
from plotly.callbacks import Points
from ui_helpers import SPACE, make_search, three_objectives

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
    assert f"trial {trial}" in view.value and 'class="cell active"' in view.value
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
    five = list(trace.customdata[:5])
    assert explorer.selected == five and "5 selected" in explorer.details.value
    with pytest.raises(ConfigError, match="at most 4 pinned"):
        explorer.pin()  # five at once: rejected, nothing pinned
    assert explorer.pinned == []
    explorer.select(five[:4])
    explorer.pin()  # exactly four: fine
    assert explorer.pinned == five[:4]
    assert all(f"trial {t}" in explorer.pinned_box.value for t in five[:4])
    explorer.select([five[4]])
    explorer.buttons["pin"].click()  # a fifth: refused in the widget
    assert explorer.pinned == five[:4] and "at most 4 pinned" in explorer.action_out.value
    explorer.buttons["unpin"].click()
    assert explorer.pinned == [] and explorer.pinned_box.value == ""


def test_budget_sliders_filter_the_front_and_move_the_best_feasible_arch(finished):
    explorer = ParetoExplorer(finished)
    results = finished.results.set_index("trial", drop=False)
    star = explorer.figure.data[3]
    best = int(results["loss"].idxmin())
    assert explorer.best == best  # no budget: the best loss
    assert (star.x[0], star.y[0]) == (results.loc[best, "loss"], results.loc[best, "cost"])
    front = explorer.figure.data[1]
    assert set(front.marker.opacity) == {1.0}

    cost_budget = float(results.loc[best, "cost"]) - 1e-9  # the best arch no longer fits
    explorer.sliders["cost"].value = cost_budget  # dragging the slider re-highlights
    fits = results[results["cost"] <= explorer.sliders["cost"].value + 1e-12]
    expected = int(fits["loss"].idxmin())
    assert expected != best and explorer.best == expected
    assert (star.x[0], star.y[0]) == (results.loc[expected, "loss"], results.loc[expected, "cost"])
    # front points over budget fade; the table keeps the front archs within budget
    costs = results.loc[list(front.customdata), "cost"].to_numpy()
    faded = [o < 1.0 for o in front.marker.opacity]
    assert faded == list(costs > explorer.sliders["cost"].value + 1e-12) and any(faded)
    table = explorer.front()
    on_front = set(finished.pareto()["trial"])
    assert set(table["trial"]) == {t for t in on_front if t in set(fits["trial"])}
    assert f"trial {best}" not in explorer.table.value or str(best) not in table["trial"].astype(
        str
    )
    assert f"{len(table)} of {len(on_front)} archs within budget" in explorer.table.value
    assert len(explorer.front(within_budget=False)) == len(on_front)

    explorer.sliders["cost"].value = explorer.sliders["cost"].min - 1  # clamps to the minimum
    cheapest = results[results["cost"] <= results["cost"].min() + 1e-12]
    assert explorer.best == int(cheapest["loss"].idxmin())
    assert star.y[0] == results["cost"].min()


def test_axis_pickers_with_three_objectives():
    search = make_search(fn=three_objectives, budget=30, n_obj=3)
    search.start().wait(60)
    explorer = ParetoExplorer(search)
    results = search.results.set_index("trial")
    assert explorer.color_picker.value == "size" and explorer.info.color == "size"
    explorer.x_picker.value = "size"
    explorer.y_picker.value = "loss"
    front = explorer.figure.data[1]
    assert list(front.x) == results.loc[list(front.customdata), "size"].tolist()
    assert list(front.y) == results.loc[list(front.customdata), "loss"].tolist()
    assert explorer.figure.layout.xaxis.title.text == "size (↑ better)"
    explorer.color_picker.value = "(none)"
    assert explorer.info.colors is None and explorer.figure.data[0].marker.coloraxis is None
    star = explorer.figure.data[3]
    assert star.x[0] == results.loc[explorer.best, "size"]  # the star follows the axes
    _click(explorer, 1, 0)
    assert explorer.selected == [int(front.customdata[0])]


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
    # Export writes into the search's folder by default (here: the current one, the search is
    # in memory) and says where
    assert explorer.path_box.value.endswith(f"subnet-trial{explorer.selected[0]}.pt")
    explorer.path_box.value = str(tmp_path / "best.pt")
    explorer.buttons["export"].click()
    assert str((tmp_path / "best.pt").resolve()) in explorer.action_out.value
    x = torch.randn(5, 64)
    with net.subnet(arch), torch.no_grad():
        expected = net(x)
    with torch.no_grad():
        assert torch.allclose(explorer.exported(x), expected, atol=1e-5)
        assert torch.allclose(load_subnet(tmp_path / "best.pt")(x), expected, atol=1e-5)


def test_export_goes_to_the_runs_folder_and_numbers_read_well(tmp_path):
    torch.manual_seed(0)
    net = ElasticMLP()
    journal = tmp_path / "run" / "search.journal"
    journal.parent.mkdir()
    search = Search(
        net,
        objectives=[params(), macs((1, 64))],
        strategy="random",
        budget=6,
        storage=str(journal),
        seed=0,
    )
    search.start().wait(60)
    explorer = ParetoExplorer(search, net=net)
    assert explorer.out_dir == journal.parent.resolve()
    _click(explorer, 1, 0)
    trial = explorer.selected[0]
    explorer.buttons["export"].click()
    written = journal.parent / f"subnet-trial{trial}.pt"
    assert written.is_file() and str(written.resolve()) in explorer.action_out.value
    # SI prefixes and units: 19.7k MACs, never 1.971e+04 beside 9472
    row = search.results.set_index("trial").loc[trial]
    macs_text = f"{row['macs'] / 1000:.4g}k MACs"
    assert macs_text in explorer.details.value
    assert explorer.sliders["macs"].readout_format == ".3s"
    assert explorer.sliders["macs"].description == "MACs ≤"
    assert "e+0" not in explorer.table.value and "MACs" in explorer.table.value


def test_the_star_is_never_dimmed_and_old_calls_warn(finished):
    explorer = ParetoExplorer(finished)
    star = explorer.figure.data[3]
    assert star.unselected.marker.opacity == 1 and star.selected.marker.opacity == 1
    assert explorer.figure.layout.clickmode == "event"  # a click selects nothing in plotly
    with pytest.warns(FutureWarning, match=r"ParetoExplorer: pass net=\.\.\. by keyword"):
        ParetoExplorer(finished, None, None)
