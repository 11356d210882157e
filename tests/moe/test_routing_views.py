"""nasviz.viz routing figures (info records) and the RoutingHeatmap widget, driven in Python."""

from __future__ import annotations

import copy

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from plotly.callbacks import Points

from nasviz.errors import ConfigError, MoEError
from nasviz.moe import (
    LayerRecord,
    Recording,
    RoutingRecorder,
    RoutingStats,
    compression_report,
    drop_experts,
    merge_experts,
    prune_experts,
)
from nasviz.objectives import accuracy, macs, params
from nasviz.search import Search
from nasviz.ui._routing import RoutingHeatmap
from nasviz.viz import compression_figure, compression_info
from nasviz.viz._routing import (
    NOT_ROUTED,
    expert_colors,
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
    assert routing_grid_figure(seq).data[0].zmax == pytest.approx(seq.num_experts - 0.5)


def test_compressed_variants_sit_on_a_real_search_pareto_figure(moe_supernet):
    """A tiny ElasticTransformer MoE search and compressed copies of its largest subnet, measured
    by the search's own objectives, in one Pareto figure."""
    net, dataset = moe_supernet
    objectives = [accuracy(dataset.val), params(), macs((1, 8))]
    search = Search(
        net, objectives=objectives, strategy="random", budget=6, storage=":memory:", seed=0
    )
    status = search.start().wait(timeout=120)
    assert status.state == "finished", search.traceback
    static = net.export(net.space.largest()).eval()
    with torch.no_grad(), RoutingRecorder(static) as rec:
        static(dataset.val.X)
    stats = rec.stats()
    report = compression_report(
        {
            "largest": static,
            "pruned": prune_experts(static, stats, keep=2),
            "merged": merge_experts(static, stats, groups=1),
        },
        dataset.val,
        objectives=search.objectives,
    )
    results = search.results
    info = compression_info(report, results, search.objectives, x="params", y="accuracy")
    assert (info.x, info.y) == ("params", "accuracy") and info.names == (
        "largest",
        "pruned",
        "merged",
    )
    assert (
        info.xs.tolist() == report.params.tolist() and info.ys.tolist() == report.accuracy.tolist()
    )
    # on_front: nothing (search result or other variant) dominates it over all three objectives
    points = np.vstack(
        [
            results[["accuracy", "params", "macs"]].to_numpy(float),
            report[["accuracy", "params", "macs"]].to_numpy(float),
        ]
    )
    for i, row in enumerate(report[["accuracy", "params", "macs"]].to_numpy(float)):
        dominated = (
            (points[:, 0] >= row[0])
            & (points[:, 1] <= row[1])
            & (points[:, 2] <= row[2])
            & ((points[:, 0] > row[0]) | (points[:, 1] < row[1]) | (points[:, 2] < row[2]))
        ).any()
        assert info.on_front[i] == (not dominated)
    assert info.search is not None and len(info.search.trials) == len(results)
    fig = compression_figure(info)
    names = [t.name for t in fig.data]
    assert names[-3:] == ["largest", "pruned", "merged"] and "Pareto front" in names
    assert [t.x[0] for t in fig.data[-3:]] == report.params.tolist()  # one legend entry each
    assert f"{int(info.on_front.sum())} of 3 variants" in fig.layout.title.text
    alone = compression_figure(report)  # no search: the variants on the default axes
    assert [t.name for t in alone.data] == ["largest", "pruned", "merged"]
    assert [t.x[0] for t in alone.data] == report.accuracy.tolist()
    with pytest.raises(ConfigError, match="no column"):
        compression_info(report, objectives=[("accuracy", "maximize"), ("latency", "minimize")])


def test_sequence_colours_are_distinct_and_not_routed_is_grey():
    for n in (4, 24, 64):
        colours = expert_colors(n)
        assert len(set(colours)) == n and NOT_ROUTED not in colours
    layer = LayerRecord(
        "l",
        64,
        1,
        np.array([[63], [5], [0]]),
        np.array([[1.0], [0.0], [1.0]], np.float32),
        np.full((3, 64), 1 / 64, np.float32),
        np.zeros((3, 64), np.float32),
        np.zeros(3, np.int64),
        np.arange(3),
        np.array([7, 8, 9]),
        dropped=np.array([[False], [True], [False]]),
    )
    info = routing_sequence_info(RoutingStats(Recording((layer,), 1)), 0)
    assert info.z.tolist() == [[63, -1, 0]] and info.num_experts == 64  # position 1: dropped
    heat = routing_grid_figure(info).data[0]
    scale = heat.colorscale
    band = 1 / 65  # 65 bands: not routed, then 64 experts
    assert scale[0][1] == NOT_ROUTED and scale[1][0] == pytest.approx(band)
    zmin, zmax = heat.zmin, heat.zmax

    def colour_of(value):  # the band a value falls in
        t = (value - zmin) / (zmax - zmin)
        return next(
            c for (lo, c), (hi, _) in zip(scale[::2], scale[1::2], strict=True) if lo <= t <= hi
        )

    assert colour_of(-1) == NOT_ROUTED and colour_of(0) != colour_of(63) != NOT_ROUTED
    assert colour_of(0) == expert_colors(64)[0] and colour_of(63) == expert_colors(64)[63]
    assert list(heat.text[0]) == ["63", "", "0"]
    assert heat.colorbar.ticktext[0] == "not routed"


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
    assert "application/vnd.plotly.v1+json" in view._repr_mimebundle_()
    with pytest.raises(MoEError):
        view.info("bogus")


def test_drop_control_shows_the_load_in_the_heatmap_and_accuracy_on_demand(
    recorded, tiny_tasks, monkeypatch
):
    model, stats = recorded
    calls = []
    import nasviz.objectives as objectives

    real = objectives.evaluate_accuracy
    monkeypatch.setattr(
        objectives, "evaluate_accuracy", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    view = RoutingHeatmap(stats, model=model, data=tiny_tasks.test)
    assert view.accuracy_button.disabled  # nothing dropped yet
    view.drop_layer.value = stats.layers[1]
    view.drop_select.value = (1, 3)
    view.drop_button.click()
    assert calls == []  # dropping is instant: no model runs
    result = view.last_drop
    expected = stats.load_without(1, [1, 3])
    assert result.equals(expected)
    z = np.asarray(view.figure.data[0].z, dtype=float)
    assert np.isnan(z[1, [1, 3]]).all()  # the heatmap shows the load after the drop
    np.testing.assert_allclose(z[1, [0, 2]], expected.fraction_after[[0, 2]])
    np.testing.assert_allclose(z[0], stats.load_matrix().to_numpy()[0])  # other layers as before
    assert "dropped" in view.figure.layout.title.text and view.view_picker.value == "drop"
    assert "accuracy change" in view.drop_result.value and not view.accuracy_button.disabled
    view.accuracy_button.click()
    assert len(calls) == 2  # the model and the pruned copy, once each
    after = real(drop_experts(model, {stats.layers[1]: [1, 3]}), tiny_tasks.test)
    scored = view.last_drop
    assert scored.accuracy_after.iloc[0] == pytest.approx(after)
    assert scored.accuracy_before.iloc[0] == pytest.approx(real(model, tiny_tasks.test))
    assert f"{after:.1f}%" in view.drop_result.value
    view.drop_select.value = (0, 1, 2, 3)
    view.drop_button.click()
    assert "proper subset" in view.drop_result.value  # error shown, not raised in the callback
    _click(view, 0, 2)  # cells of the drop view still list their tokens
    assert view.listed.equals(stats.tokens(0, 2, limit=20))
    no_model = RoutingHeatmap(stats)
    no_model.drop(0, [2])
    assert no_model.accuracy_button.disabled
    with pytest.raises(MoEError, match="model=..., data="):
        no_model.accuracy_change()
    with pytest.raises(MoEError, match="drop experts first"):
        RoutingHeatmap(stats, model=model, data=tiny_tasks.test).accuracy_change()


def test_a_model_other_than_the_recorded_one_is_refused(recorded, tiny_tasks):
    model, stats = recorded
    retrained = copy.deepcopy(model)
    with torch.no_grad():
        retrained.moes[0].router.weight.add_(0.01)
    for other in (retrained, prune_experts(model, stats, keep=2)):
        with pytest.raises(MoEError, match="come from another model"):
            RoutingHeatmap(stats, model=other, data=tiny_tasks.test)
    assert RoutingHeatmap(stats, model=model, data=tiny_tasks.test).model is model


def test_built_from_a_recorder(classifier, tiny_tasks):
    with RoutingRecorder(classifier) as rec:
        classifier(tiny_tasks.test.X[:3])
    view = RoutingHeatmap(rec)
    assert view.stats.recording.num_examples == 3
    with pytest.raises(MoEError):
        RoutingHeatmap("not stats")
