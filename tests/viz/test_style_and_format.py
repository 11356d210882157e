"""One template, readable numbers, and figures saved as reports (plotly JSON + a PNG)."""

from __future__ import annotations

import base64
import math

import pandas as pd
import plotly.express as px
import pytest
import torch

from nasviz.errors import NasvizWarning
from nasviz.prune import magnitude
from nasviz.viz import (
    Figure,
    bit_strip_figure,
    bit_strip_info,
    dashboard_figure,
    format_frame,
    format_value,
    hypervolume_figure,
    latency_check_figure,
    latency_check_info,
    layer_sparsity_figure,
    loss_figure,
    masks_figure,
    pareto_figure,
    predictor_figure,
    sensitivity_figure,
    sensitivity_info,
    si,
    styled,
)
from nasviz.viz._format import axis_title, nice_bound
from nasviz.viz._image import _Renderer
from nasviz.viz._static import PLOTLY_MIME, static_bundle
from nasviz.viz._style import TEMPLATE

OBJ = [("accuracy", "maximize"), ("macs", "minimize")]
RESULTS = pd.DataFrame(
    {
        "trial": range(5),
        "accuracy": [90.0, 95.5, 85.0, 97.25, 88.0],
        "macs": [19712.0, 4.2e4, 9472.0, 1.5e6, 2.0e4],
        "state": "COMPLETE",
        "width": [8, 16, 8, 32, 16],
    }
)


def test_numbers_read_with_si_prefixes_and_units():
    assert [si(v) for v in (19712, 9472, 4.0e10, 0.0123, 999.9)] == [
        "19.7k",
        "9.47k",
        "40G",
        "0.0123",
        "1k",
    ]
    assert format_value("macs", 19712) == "19.7k MACs"
    assert format_value("accuracy", 97.123) == "97.1%"
    assert format_value("latency", 0.41234) == "0.412 ms"
    assert format_value("memory_bytes", 12345) == "12.3kB"
    assert format_value("loss", 0.0123456) == "0.0123" and format_value("x", math.nan) == "–"
    assert axis_title("macs", "minimize") == "MACs (↓ better)"
    assert axis_title("latency", "minimize") == "latency (ms, ↓ better)"
    assert nice_bound(8.2527881040, "minimize") == 8.26  # rounded outward
    assert nice_bound(82.527, "maximize") == 82.5
    table = format_frame(RESULTS, ["accuracy", "macs"])
    assert list(table["macs"]) == ["19.7k MACs", "42k MACs", "9.47k MACs", "1.5M MACs", "20k MACs"]
    assert table["accuracy"][3] == "97.2%" and RESULTS["accuracy"][3] == 97.25  # a copy


def _every_figure() -> dict[str, Figure]:
    torch.manual_seed(0)
    masks = magnitude(torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Linear(4, 2)), 0.5)
    history = pd.DataFrame(
        {"step": [0, 0, 1, 1], "epoch": 0, "member": ["largest", "smallest"] * 2, "loss": 1.0}
    )
    cycles = pd.DataFrame({"cycle": [1], "accuracy_kendall_tau": [0.5]})
    sensitivity = pd.DataFrame(
        {"layer": ["0", "1"], "drop": [0.5, 2.0], "accuracy": [95.0, 93.5], "baseline": 95.5}
    ).assign(bits=4, kernel="simulated")
    check = pd.DataFrame(
        {
            "width": [8, 16],
            "predicted_ms": [0.4, 0.8],
            "measured_ms": [0.45, 1.2],
            "p10_ms": [0.41, 1.1],
            "p90_ms": [0.5, 1.3],
            "violated": [False, True],
            "bound_ms": 1.0,
        }
    )
    return {
        "pareto": pareto_figure(RESULTS, OBJ),
        "hypervolume": hypervolume_figure(RESULTS, OBJ),
        "predictor": predictor_figure(cycles),
        "dashboard": dashboard_figure(RESULTS, OBJ, cycles=cycles),
        "loss": loss_figure(history),
        "sparsity": layer_sparsity_figure(masks),
        "masks": masks_figure(masks),
        "express": styled(px.line(RESULTS, x="trial", y="accuracy")),
        "sensitivity": sensitivity_figure(sensitivity_info(sensitivity)),
        "bit strip": bit_strip_figure(bit_strip_info({"0": 4, "1": 8})),
        "latency check": latency_check_figure(latency_check_info(check)),
    }


def test_every_figure_uses_the_one_template():
    for name, fig in _every_figure().items():
        assert isinstance(fig, Figure), name
        assert fig.layout.template == TEMPLATE, name  # never plotly's grey default
    assert px.line(RESULTS, x="trial", y="accuracy", template="nasviz").layout.template == TEMPLATE


def test_a_static_bundle_is_plotly_json_and_a_png_without_html():
    bundle = static_bundle(pareto_figure(RESULTS, OBJ))
    assert set(bundle) == {PLOTLY_MIME, "image/png", "text/plain"}  # no HTML, no CDN
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    spec = bundle[PLOTLY_MIME]
    assert spec["layout"]["title"]["text"].startswith("Pareto front — 5 evaluated")
    assert bundle["text/plain"] == "<Pareto front — 5 evaluated, 4 on the front>"


def test_without_a_browser_figures_are_saved_without_an_image_and_say_why(monkeypatch):
    """What a Binder image without Chrome gets: a note, never an error in the notebook."""
    from nasviz.viz import _static

    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    renderer = _Renderer()  # a fresh one: this process's shared one has a browser
    monkeypatch.setattr(_static, "png", lambda spec, w, h: renderer.render(spec, w, h))
    monkeypatch.setattr(_static, "unavailable", lambda: renderer.reason)
    with pytest.warns(NasvizWarning, match="could not start a Chrome/Chromium"):
        bundle = static_bundle(pareto_figure(RESULTS, OBJ))
    assert "image/png" not in bundle and PLOTLY_MIME in bundle
    assert "no static image: kaleido could not start" in bundle["text/plain"]
    again = static_bundle(pareto_figure(RESULTS, OBJ))  # said once; later figures just skip it
    assert sorted(again) == sorted(bundle) == [PLOTLY_MIME, "text/plain"]
