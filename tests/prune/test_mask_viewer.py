"""MaskViewer and mask figures, tested on the widget objects (state sent, bit packing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from prune_helpers import mlp

from nasviz.errors import ConfigError, MaskError
from nasviz.prune import Masks, channels, magnitude, random
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
    assert "application/vnd.plotly.v1+json" in bundle
    assert "application/vnd.jupyter.widget-view+json" in bundle
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


def test_a_failing_slider_value_is_shown_and_the_slider_goes_back():
    model = mlp((64, 4, 10))  # 4 hidden neurons: channels at 0.9 would remove all of them
    v = MaskViewer(model, method="channels", sparsity=0.25)
    masks, bits = v.masks, v.canvas.bits
    v.slider.value = 0.9
    assert v.slider.value == 0.25 and v.masks is masks and v.canvas.bits == bits
    assert (
        "would remove all 4 channels" in v.error.value and "kept channels at 0.25" in v.error.value
    )
    with pytest.raises(MaskError, match="all 4 channels"):
        v.set_sparsity(0.95)  # called from code, the error is raised too
    v.slider.value = 0.5
    assert v.error.value == "" and v.masks == channels(model, 0.5)


def test_a_failing_method_is_shown_and_the_picker_goes_back():
    model = mlp((64, 4, 10))
    v = MaskViewer(model, sparsity=0.9)
    v.picker.value = "channels"
    assert v.picker.value == "magnitude" and v.method == "magnitude" and v.slider.value == 0.9
    assert "channels at 0.90 failed" in v.error.value
    assert v.masks == magnitude(model, 0.9)


def _big():
    mask = torch.rand(1000, 700, generator=torch.Generator().manual_seed(0)) > 0.4
    other = torch.rand(1000, 700, generator=torch.Generator().manual_seed(1)) > 0.4
    return Masks({"w": mask}), Masks({"w": other})


def test_zoom_shows_exact_bits_in_python_and_in_the_browser_state():
    a, b = _big()
    v = MaskViewer(a, other=b)
    assert v.window == (0, 1000, 0, 700) and list(v.canvas.window) == [0, 1000, 0, 700]
    assert "density tiles" in v.summary.value
    assert v.zoom((100, 250), (40, 340)) == (100, 250, 40, 340)
    assert list(v.canvas.window) == [100, 250, 40, 340]  # sent to the browser
    assert np.array_equal(v.window_bits(), a["w"].numpy()[100:250, 40:340])
    assert "rows 100–250, cols 40–340 (exact bits)" in v.summary.value
    heat = v.static_figure().data[1]  # the saved notebook's figure shows the same bits
    assert np.array_equal(np.asarray(heat.z, dtype=bool), v.window_bits())
    v.set_mode("diff")
    assert v.window == (100, 250, 40, 340)  # the window stays
    assert np.array_equal(v.window_bits(), (a["w"] != b["w"]).numpy()[100:250, 40:340])


def test_windows_from_the_browser_are_honoured_and_clipped():
    a, _ = _big()
    v = MaskViewer(a)
    v.canvas.window = [990, 1200, -5, 30]  # as the front end would send it, out of range
    assert v.window == (990, 1000, 0, 30) and list(v.canvas.window) == [990, 1000, 0, 30]
    assert np.array_equal(v.window_bits(), a["w"].numpy()[990:, :30])
    v.canvas.window = [5, 5, 0, 10]  # empty: the last good window stays
    assert v.window == (990, 1000, 0, 30)
    with pytest.raises(ConfigError, match="window"):
        v.zoom((0, 10), (3, 3))


def test_the_viewer_can_open_on_a_diff():
    a, b = _big()
    v = MaskViewer(a, other=b, mode="diff")
    assert v.canvas.mode == "diff" and v.mode.value == "diff" and len(v.canvas.other_bits) > 0
    with pytest.raises(ConfigError, match="diff"):
        MaskViewer(a, mode="diff")


@given(
    st.integers(1, 30), st.integers(1, 30), st.integers(1, 7), st.integers(1, 7), st.integers(0, 99)
)
def test_density_tiles_are_the_fraction_kept_per_tile(rows, cols, tr, tc, seed):
    from nasviz.viz._masks import _tiles

    grid = np.random.default_rng(seed).random((rows, cols)) > 0.5
    got = _tiles(grid, tr, tc)
    for i in range(got.shape[0]):
        for j in range(got.shape[1]):
            assert got[i, j] == pytest.approx(
                grid[i * tr : (i + 1) * tr, j * tc : (j + 1) * tc].mean()
            )
