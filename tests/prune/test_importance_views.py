"""Importance figures (info records) and the ImportanceView widget, driven in Python."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from hf_models import build

from nasviz.errors import ConfigError
from nasviz.prune import Importance
from nasviz.ui._importance import ImportanceView
from nasviz.viz import (
    Figure,
    head_importance_figure,
    head_importance_info,
    importance_figure,
    layer_importance_figure,
    layer_importance_info,
    neuron_importance_figure,
    neuron_importance_info,
)
from nasviz.viz._style import TEMPLATE

_IDS = torch.randint(3, 64, (4, 10), generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def scored():
    model = build("llama")
    return Importance.for_data(model, _IDS)


def test_head_info_is_the_layer_by_head_table_with_the_plans_removals(scored):
    info = head_importance_info(scored)
    np.testing.assert_allclose(info.z, scored.head_matrix().to_numpy())
    assert info.rows == ("layer 0", "layer 1", "layer 2") and info.kv_heads == (0, 0, 1, 1)
    assert not info.removed.any()
    plan = scored.plan(head_sparsity=0.5, drop_layers=1)
    marked = head_importance_info(scored, plan)
    for r in range(3):
        if r in plan.drop:
            assert marked.removed[r].all()
        else:
            assert sorted(np.flatnonzero(~marked.removed[r])) == list(plan.heads[r])
    fig = head_importance_figure(marked)
    assert list(np.asarray(fig.data[0].text).ravel()).count("✕") == int(marked.removed.sum())
    assert "removed" in marked.text[plan.drop[0], 0]


def test_layer_and_neuron_infos(scored):
    plan = scored.plan(neuron_sparsity=0.25, drop_layers=1)
    layers = layer_importance_info(scored, plan)
    np.testing.assert_allclose(layers.influence, scored.layers["block_influence"])
    assert layers.dropped.tolist() == [i in plan.drop for i in range(3)]
    neurons = neuron_importance_info(scored, plan)
    for layer, (curve, kept) in enumerate(zip(neurons.curves, neurons.kept, strict=True)):
        assert np.all(np.diff(curve) <= 0) and len(curve) == 48
        assert kept == (0 if layer in plan.drop else 36)
    fig = neuron_importance_figure(neurons)
    assert len(fig.data) == 3 + 2  # a line per layer, a cut marker per kept layer
    both = importance_figure(scored, plan)
    assert [type(t).__name__ for t in both.data] == ["Heatmap", "Bar"]
    for figure in (fig, both, layer_importance_figure(layers)):  # nasviz's one template
        assert isinstance(figure, Figure) and figure.layout.template == TEMPLATE


def test_view_builds_plans_from_its_sliders_and_marks_them(scored):
    view = ImportanceView(scored)
    assert view.plan.heads == {} and not view.info().removed.any()
    view.head_slider.value = 0.5
    view.layer_slider.value = 1
    expected = scored.plan(head_sparsity=0.5, drop_layers=1)
    assert view.plan == expected
    shown = np.asarray(view.figure.data[0].text)
    assert (shown == "✕").sum() == head_importance_info(scored, expected).removed.sum()
    assert "heads_kept" in view.summary.value
    view.show("layers")
    assert isinstance(view.figure.data[0], go.Bar) and view.view_picker.value == "layers"
    view.view_picker.value = "neurons"
    assert all(isinstance(t, go.Scatter) for t in view.figure.data)
    assert isinstance(view.static_figure(), go.Figure)
    with pytest.raises(ConfigError, match="view must be one of"):
        view.show("experts")


def test_a_plan_the_model_cannot_take_is_shown_and_the_previous_one_stays():
    olmoe = Importance.for_data(build("olmoe"), _IDS)
    view = ImportanceView(olmoe, view="layers")
    view.layer_slider.value = 1
    before = view.plan
    view.head_slider.value = 0.5
    assert "OLMoE heads cannot be pruned" in view.message.value and view.plan == before
    with pytest.raises(ConfigError, match="ImportanceView shows an Importance"):
        ImportanceView(object())
