"""MaskViewer and mask figures, tested on the widget objects (state sent, bit packing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from prune_helpers import mlp

from nasviz.errors import ConfigError
from nasviz.prune import channels, magnitude, random
from nasviz.ui._masks import MaskViewer, pack_mask, unpack_mask
from nasviz.viz._masks import layer_sparsity_info, mask_heatmap_info, masks_figure


@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**31))
def test_bit_packing_round_trips_at_one_bit_per_weight(rows, cols, seed):
    mask = torch.rand(rows, cols, generator=torch.Generator().manual_seed(seed)) > 0.5
    r, c, bits = pack_mask(mask)
    assert (r, c) == (rows, cols) and len(bits) == (rows * cols + 7) // 8
    assert np.array_equal(unpack_mask(bits, r, c), mask.numpy())


def test_conv_masks_are_drawn_as_out_by_rest_grids():
    r, c, _ = pack_mask(torch.ones(8, 3, 3, 3, dtype=torch.bool))
    assert (r, c) == (8, 27)


def test_viewer_sends_the_selected_layer_bit_packed():
    model = mlp()
    masks = magnitude(model, 0.5)
    v = MaskViewer(masks, model=model)
    assert v.canvas.layer == "0.weight" and (v.canvas.rows, v.canvas.cols) == (48, 64)
    assert np.array_equal(unpack_mask(v.canvas.bits, 48, 64), masks["0.weight"].numpy())
    assert v.sent_bytes == 48 * 64 // 8
    v.select("2.weight")
    assert (v.canvas.rows, v.canvas.cols) == (32, 48) and v.layers.value == "2.weight"
    assert np.array_equal(unpack_mask(v.canvas.bits, 32, 48), masks["2.weight"].numpy())


def test_slider_re_prunes_and_changes_the_bytes_sent():
    model = mlp()
    v = MaskViewer(model, sparsity=0.2)
    before = v.canvas.bits
    v.slider.value = 0.8
    assert v.masks.sparsity == pytest.approx(0.8, abs=1e-3) and v.masks == magnitude(model, 0.8)
    assert v.canvas.bits != before
    assert unpack_mask(v.canvas.bits, v.canvas.rows, v.canvas.cols).mean() < 0.5
    assert tuple(v.bars.data[0].y) == pytest.approx(layer_sparsity_info(v.masks).sparsity)
    v.picker.value = "channels"
    assert v.masks.meta["method"] == "channels" and v.masks == channels(model, 0.8)


def test_diff_mode_sends_both_masks():
    model = mlp()
    a, b = magnitude(model, 0.5), random(model, 0.5)
    v = MaskViewer(a, other=b)
    assert v.canvas.other_bits == b"" and v.canvas.mode == "mask"
    v.mode.value = "diff"
    assert v.canvas.mode == "diff"
    assert np.array_equal(unpack_mask(v.canvas.other_bits, 48, 64), b["0.weight"].numpy())
    fig = v.static_figure()
    assert len(fig.data) == 3 and fig.data[2].type == "heatmap"


def test_static_fallback_is_in_the_mimebundle():
    v = MaskViewer(magnitude(mlp(), 0.5))
    bundle = v._repr_mimebundle_()
    assert "text/html" in bundle and "application/vnd.jupyter.widget-view+json" in bundle
    assert v.slider.disabled  # no model: no live re-pruning
    with pytest.raises(ConfigError, match="model"):
        v.set_sparsity(0.3)


def test_viewer_bad_input():
    with pytest.raises(ConfigError, match="Masks or a model"):
        MaskViewer("masks")
    with pytest.raises(ConfigError, match="method"):
        MaskViewer(mlp(), method="snip")
    with pytest.raises(ConfigError, match="diff"):
        MaskViewer(magnitude(mlp(), 0.5)).set_mode("diff")


def test_heatmap_info_tiles_big_masks_and_zooms_to_exact_bits():
    mask = torch.zeros(1000, 600, dtype=torch.bool)
    mask[:500] = True
    info = mask_heatmap_info(mask, "w", max_cells=100)
    assert info.tile == (10, 6) and info.values.shape == (100, 100)
    assert info.values[:50].min() == 1.0 and info.values[50:].max() == 0.0
    zoom = mask_heatmap_info(mask, "w", window=(495, 505, 0, 20), max_cells=100)
    assert (
        zoom.tile == (1, 1)
        and zoom.values.shape == (10, 20)
        and zoom.values[4, 0] == 1
        and zoom.values[5, 0] == 0
    )


def test_diff_info_and_summary_figure():
    a = {"w": torch.tensor([[True, False], [True, True]])}
    b = {"w": torch.tensor([[True, True], [False, True]])}
    info = mask_heatmap_info(a["w"], "w", other=b["w"])
    assert info.mode == "diff" and info.values.tolist() == [[0, 1], [1, 0]]
    s = layer_sparsity_info(a)
    assert s.sparsity == (0.25,) and s.overall == 0.25
    assert masks_figure(a, other=b).data[0].type == "bar"
