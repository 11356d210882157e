"""Pruning sweeps: a background run filling accuracy vs sparsity on the search's axes."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from prune_helpers import mlp, same_state, state

from nasviz.errors import ConfigError, MaskError
from nasviz.objectives import Objective
from nasviz.prune import Masks, magnitude, sweep

X = torch.randn(32, 64, generator=torch.Generator().manual_seed(0))


def agreement(reference):
    target = reference(X).argmax(-1)

    def evaluate(model):
        with torch.no_grad():
            return 100.0 * float((model(X).argmax(-1) == target).float().mean())

    return evaluate


def test_sweep_runs_in_the_background_and_fills_one_row_per_point():
    model = mlp()
    before = state(model)
    run = sweep(
        model,
        ["magnitude", "random", "channels"],
        [0.0, 0.5],
        agreement(model),
        input_shape=(1, 64),
    )
    events = []
    run.subscribe(lambda e: events.append(e) if e.kind == "result" else None)
    run.start()
    status = run.wait(timeout=120)
    assert status.state == "finished" and status.done == 6 and status.failed == 0
    df = run.results
    assert list(df["method"]) == ["magnitude"] * 2 + ["random"] * 2 + ["channels"] * 2
    assert {"accuracy", "params", "nonzero_params", "macs", "actual_sparsity"} <= set(df.columns)
    assert (df[df.sparsity == 0.0]["accuracy"] == 100.0).all()
    dense = df.iloc[0]
    unstructured = df[(df.method == "magnitude") & (df.sparsity == 0.5)].iloc[0]
    structured = df[(df.method == "channels") & (df.sparsity == 0.5)].iloc[0]
    assert (
        unstructured["params"] == dense["params"]
        and unstructured["nonzero_params"] < dense["params"]
    )
    assert structured["params"] < dense["params"] and structured["macs"] < dense["macs"]
    assert len(events) == 6 and isinstance(run.masks[("channels", 0.5)], Masks)
    assert same_state(model, before)


def test_finetune_is_called_on_masked_copies_and_objectives_name_columns():
    model = mlp()
    seen = []
    objective = Objective("agree", "maximize", lambda m, a: agreement(model)(m))
    run = sweep(
        model,
        {"mag": lambda m, s: magnitude(m, s)},
        [0.5],
        objective,
        finetune=lambda m: seen.append(hasattr(m[0], "parametrizations")),
    )
    run.run()
    assert seen == [True] and "agree" in run.results.columns


def test_a_failing_point_is_recorded_and_the_sweep_goes_on():
    def broken(model, s):
        raise RuntimeError("boom")

    run = sweep(mlp(), {"broken": broken, "magnitude": "magnitude"}, [0.5], agreement(mlp()))
    status = run.run()
    assert status.state == "finished" and status.failed == 1
    df = run.results
    assert "boom" in df.iloc[0]["error"] and pd.isna(df.iloc[1]["error"])


def test_bad_arguments():
    with pytest.raises(MaskError):
        sweep(mlp(), ["magnitude"], [1.0], agreement(mlp()))
    with pytest.raises(ConfigError, match="unknown pruning method"):
        sweep(mlp(), ["snip"], [0.5], agreement(mlp()))
    with pytest.raises(ConfigError, match="evaluate"):
        sweep(mlp(), ["magnitude"], [0.5], None)
