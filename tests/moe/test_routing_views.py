"""nasviz.viz routing figures (info records) and the RoutingHeatmap widget, driven in Python."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.callbacks import Points

from nasviz.errors import MoEError
from nasviz.moe import RoutingRecorder
from nasviz.ui._routing import RoutingHeatmap
from nasviz.viz._routing import (
    compression_figure,
    routing_grid_figure,
    routing_label_info,
    routing_load_info,
    routing_sequence_info,
)


def test_load_info_is_the_load_matrix(recorded):
    _, stats = recorded
    info = routing_load_info(stats)
    assert info.rows == tuple(stats.layers) and info.columns == (
        "expert 0",
        "expert 1",
        "expert 2",
        "expert 3",
    )
    np.testing.assert_allclose(info.z, stats.load_matrix().to_numpy())
    np.testing.assert_allclose(info.z.sum(axis=1), 1.0)
    fig = routing_grid_figure(info)
    assert isinstance(fig, go.Figure) and np.allclose(np.asarray(fig.data[0].z), info.z)


def test_label_and_sequence_info(recorded):
    _, stats = recorded
    label = routing_label_info(stats, "task", layer=0)
    assert label.rows == tuple(f"task={t}" for t in range(4))
    np.testing.assert_allclose(label.z, stats.by_label("task", layer=0).to_numpy())
    seq = routing_sequence_info(stats, 3)
    table = stats.sequence(3)
    assert seq.z.shape == (2, len(table)) and seq.rows == tuple(stats.layers)
    assert seq.z[1].tolist() == table[stats.layers[1]].tolist()
    assert routing_grid_figure(seq).data[0].zmax == pytest.approx(seq.z.max() + 0.5)


def test_compression_figure_plots_report_rows():
    import pandas as pd

    report = pd.DataFrame({"name": ["a", "b"], "accuracy": [90.0, 85.0], "params": [1000, 600]})
    results = pd.DataFrame({"accuracy": [80.0], "params": [500]})
    fig = compression_figure(report, results)
    assert [t.name for t in fig.data] == ["search", "MoE variants"]
    assert list(fig.data[1].x) == [1000, 600]


def _click(view: RoutingHeatmap, row: int, col: int) -> None:
    trace = view.figure.data[0]
    points = Points(
        point_inds=[[row, col]],
        xs=[trace.x[col]],
        ys=[trace.y[row]],
        trace_name=None,
        trace_index=0,
    )
    view._on_click(trace, points, None)


def test_click_lists_tokens_routed_to_the_cell(recorded):
    _, stats = recorded
    view = RoutingHeatmap(stats, max_listed=5)
    _click(view, 1, 2)
    expected = stats.tokens(1, 2, limit=5)
    assert view.listed.equals(expected)
    assert f"{stats.layers[1]}, expert 2" in view.listing.value
    assert f"{int(stats.counts(1)[2])} assignments" in view.listing.value
    assert len(view.listed) == min(5, int(stats.counts(1)[2]))


def test_views_switch_and_static_figure(recorded):
    _, stats = recorded
    view = RoutingHeatmap(stats)
    assert [v for _, v in view.view_picker.options] == [
        "load",
        "label:task",
        "label:class",
        "sequence",
    ]
    view.view_picker.value = "label:task"
    np.testing.assert_allclose(np.asarray(view.figure.data[0].z), stats.by_label("task").to_numpy())
    view.view_picker.value = "sequence"
    view.example.value = 4
    assert (
        np.asarray(view.figure.data[0].z)[0].tolist() == stats.sequence(4)[stats.layers[0]].tolist()
    )
    _click(view, 0, 0)  # clicks outside the load view list nothing
    assert view.listed is None
    static = view.static_figure()
    assert isinstance(static, go.Figure) and "Example 4" in static.layout.title.text
    assert "text/html" in view._repr_mimebundle_()
    with pytest.raises(MoEError):
        view.info("bogus")


def test_drop_control_shows_load_and_accuracy_change(recorded, tiny_tasks):
    model, stats = recorded
    view = RoutingHeatmap(stats, model=model, data=tiny_tasks.test)
    view.drop_layer.value = stats.layers[0]
    view.drop_select.value = (1,)
    view.drop_button.click()
    result = view.last_drop
    assert result.fraction_after[1] == 0 and result.fraction_after.sum() == pytest.approx(1.0)
    assert {"accuracy_before", "accuracy_after", "accuracy_change"} <= set(result.columns)
    assert result.accuracy_change.iloc[0] == pytest.approx(
        result.accuracy_after.iloc[0] - result.accuracy_before.iloc[0]
    )
    assert "accuracy" in view.drop_result.value
    view.drop_select.value = (0, 1, 2, 3)
    view.drop_button.click()
    assert "proper subset" in view.drop_result.value  # error shown, not raised in the callback
    no_model = RoutingHeatmap(stats).drop(0, [2])
    assert "accuracy_change" not in no_model.columns


def test_built_from_a_recorder(classifier, tiny_tasks):
    with RoutingRecorder(classifier) as rec:
        classifier(tiny_tasks.test.X[:3])
    view = RoutingHeatmap(rec)
    assert view.stats.recording.num_examples == 3
    with pytest.raises(MoEError):
        RoutingHeatmap("not stats")
