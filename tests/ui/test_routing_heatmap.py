"""RoutingHeatmap's colour scales: anchored for loads, reset on every view change, and drops
that the widget can send (no NaN in its JSON)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasviz import data
from nasviz.moe import MoEClassifier, RoutingRecorder
from nasviz.ui import RoutingHeatmap
from nasviz.viz import routing_grid_figure, routing_load_info


@pytest.fixture(scope="module")
def stats():
    tasks = data.tasks(n_per_task=40, seq_len=8, tokens_per_task=4, seed=0)
    torch.manual_seed(0)
    model = MoEClassifier.for_data(tasks, dim=16, hidden=16, num_experts=4, top_k=2).eval()
    with torch.no_grad(), RoutingRecorder(model, labels={"task": tasks.test.extras["task"]}) as r:
        model(tasks.test.X)
    return r.stats()


def _scale(heat) -> tuple:
    return heat.zmin, heat.zmax, heat.zauto, heat.colorbar.title.text


def test_load_colours_are_anchored_at_zero_with_the_uniform_share_mid_scale(stats):
    info = routing_load_info(stats)
    heat = routing_grid_figure(info).data[0]
    top = max(0.5, float(info.z.max()))  # twice the uniform share of 4 experts, or more
    assert _scale(heat) == (0.0, pytest.approx(top), False, "share")
    assert list(heat.colorbar.tickvals) == pytest.approx([0.0, 0.25, top])
    assert heat.colorbar.ticktext[1] == "uniform 25%"
    fig = routing_grid_figure(info)
    assert "colour from 0; mid-scale: the uniform share, 25%" in fig.layout.title.text


def test_every_view_sets_its_whole_colour_scale(stats):
    """After the sequence view (experts -1..3), the load views are back on their own scale."""
    view = RoutingHeatmap(stats)
    view._repr_mimebundle_()  # shown: the figure widget exists
    load = _scale(view.figure.data[0])
    view.show("sequence")
    heat = view.figure.data[0]
    assert (heat.zmin, heat.zmax, heat.colorbar.title.text) == (-1.5, 3.5, "expert")
    view.show("load")
    assert _scale(view.figure.data[0]) == load and view.figure.data[0].texttemplate is None
    view.show("label:task")
    label = view.figure.data[0]
    top = max(0.5, float(np.nanmax(np.asarray(label.z, dtype=float))))
    assert _scale(label) == (0.0, pytest.approx(top), False, "share")


def test_a_drop_sends_gaps_not_nan(stats):
    """NaN is not JSON: the widget could not send it ("Out of range float values are not JSON
    compliant"); dropped experts are gaps (None)."""
    view = RoutingHeatmap(stats)
    view._repr_mimebundle_()
    view.drop(1, [1, 3])
    z = view.figure.data[0].z
    assert z[1][1] is None and z[1][3] is None and z[1][0] is not None
    json.dumps(view.figure.to_plotly_json()["data"][0]["z"], allow_nan=False)
    assert np.isnan(np.asarray(z, dtype=float)[1, [1, 3]]).all()


def test_the_figure_widget_is_made_only_when_shown_and_old_calls_warn(stats):
    view = RoutingHeatmap(stats)
    view.show("sequence")  # before it is shown: no widget, drawn with this view when shown
    assert not view.slot.created
    assert view.figure.data[0].zmax == pytest.approx(3.5)
    with pytest.warns(FutureWarning, match=r"RoutingHeatmap: pass data=\.\.\. by keyword"):
        RoutingHeatmap(stats, None, None)
