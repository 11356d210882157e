"""Pruning sweeps: a background run measuring pruned, shrunk models with the search's
objectives, so sweep rows and search results share one Pareto front."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from prune_helpers import mlp, snapshot, unchanged
from torch import nn

from nasviz.errors import ConfigError, MaskError
from nasviz.objectives import Objective, accuracy, count_params, macs, params
from nasviz.prune import Masks, magnitude, sweep
from nasviz.search import Search, pareto_mask
from nasviz.supernet import ElasticMLP
from nasviz.viz import pareto_info

X = torch.randn(32, 64, generator=torch.Generator().manual_seed(0))


def agreement(reference):
    target = reference(X).argmax(-1)

    def agree(model):
        with torch.no_grad():
            return 100.0 * float((model(X).argmax(-1) == target).float().mean())

    return agree


def test_sweep_runs_in_the_background_and_fills_one_row_per_point():
    model = mlp()
    magnitude(model, 0.1).apply(model)  # a masked model is pruned on copies, never changed
    before = snapshot(model)
    reference = agreement(model)
    objectives = [
        Objective("agree", "maximize", lambda m, a: reference(m)),
        params(),
        macs((1, 64)),
    ]
    run = sweep(model, ["magnitude", "random", "channels"], [0.0, 0.5], objectives)
    events = []
    run.subscribe(lambda e: events.append(e) if e.kind == "result" else None)
    run.start()
    status = run.wait(timeout=120)
    assert status.state == "finished" and status.done == 6 and status.failed == 0
    df = run.results
    assert list(df.columns[:8]) == [
        "trial",
        "state",
        "method",
        "sparsity",
        "weight_sparsity",
        "agree",
        "params",
        "macs",
    ]
    assert list(df["trial"]) == [-1, -2, -3, -4, -5, -6] and (df["state"] == "COMPLETE").all()
    assert list(df["method"]) == ["magnitude"] * 2 + ["random"] * 2 + ["channels"] * 2
    assert (df[df.sparsity == 0.0]["agree"] == 100.0).all()
    dense = df.iloc[0]
    unstructured = df[(df.method == "magnitude") & (df.sparsity == 0.5)].iloc[0]
    structured = df[(df.method == "channels") & (df.sparsity == 0.5)].iloc[0]
    assert unstructured["weight_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert (
        unstructured["params"] == dense["params"] == count_params(model)
        and unstructured["nonzero_params"] < dense["params"]
        and unstructured["macs"] == dense["macs"]
    )
    # channels at 0.5 keeps 24 of 48 and 16 of 32 neurons: the middle layer loses 3/4
    removed = 24 * 64 + (48 * 32 - 24 * 16) + 16 * 10
    assert structured["sparsity"] == 0.5
    assert structured["weight_sparsity"] == pytest.approx(removed / (64 * 48 + 48 * 32 + 32 * 10))
    assert structured["params"] < 0.5 * dense["params"] and structured["macs"] < dense["macs"]
    assert len(events) == 6 and isinstance(run.masks[("channels", 0.5)], Masks)
    assert [o.name for o in run.objectives] == ["agree", "params", "macs"]
    assert unchanged(model, before)


def test_objectives_measure_the_shrunk_model_after_finetuning_the_masked_one():
    model = mlp()
    seen, tuned = [], []

    def shape_of(m):
        seen.append((hasattr(m[0], "parametrizations"), m[0].out_features))
        return float(m[0].out_features)

    run = sweep(
        model,
        ["channels", "magnitude"],
        [0.5],
        [Objective("width", "minimize", lambda m, a: shape_of(m))],
        finetune=lambda m: tuned.append(hasattr(m[0], "parametrizations")),
    )
    run.run()
    assert tuned == [True, True]  # fine-tuning sees the masks
    assert seen == [(False, 24), (False, 48)]  # objectives see the shrunk, plain model
    assert list(run.results["width"]) == [24.0, 48.0]


def test_a_plain_callable_names_its_column_and_dicts_fill_several():
    model = mlp()
    run = sweep(model, ["magnitude"], [0.5], agreement(model))
    run.run()
    assert "agree" in run.results and run.objectives == []
    run = sweep(model, ["magnitude"], [0.5], lambda m: {"a": 1.0, "b": 2.0})
    run.run()
    assert run.results[["a", "b"]].iloc[0].tolist() == [1.0, 2.0]
    assert "score" not in run.results


def test_a_failing_point_is_recorded_and_the_sweep_goes_on():
    def broken(model, s):
        raise RuntimeError("boom")

    model = mlp()
    before = snapshot(model)
    run = sweep(model, {"broken": broken, "magnitude": "magnitude"}, [0.5], [params()])
    status = run.run()
    assert status.state == "finished" and status.failed == 1
    df = run.results
    assert list(df["state"]) == ["FAIL", "COMPLETE"]
    assert "boom" in df.iloc[0]["error"] and "RuntimeError" in df.iloc[0]["traceback"]
    assert np.isnan(df.iloc[0]["params"]) and df.iloc[1]["error"] == ""
    assert unchanged(model, before)


def test_sweep_rows_join_search_results_on_one_pareto_front():
    torch.manual_seed(0)
    net = ElasticMLP(16, 3, widths=(8, 16), depths=(1, 2))
    X, y = torch.randn(90, 16), torch.randint(0, 3, (90,))
    objectives = [accuracy((X, y)), params()]  # the same list for both
    search = Search(net, objectives=objectives, strategy="random", budget=5, storage=":memory:")
    assert search.start().wait(timeout=120).state == "finished", search.traceback
    sub = net.export(net.space.largest())
    run = sweep(sub, ["channels", "magnitude"], [0.5], objectives)
    run.run()
    both = pd.concat([search.results, run.results], ignore_index=True)
    names = [o.name for o in objectives]
    front = pareto_mask(both[names].to_numpy(float), [o.direction for o in objectives])
    assert len(front) == len(both) and front.any()
    info = pareto_info(both, objectives)
    assert set(info.trials) == set(both["trial"])  # every row, searched or pruned, is a point
    pruned = both[both["method"] == "channels"].iloc[0]
    assert pruned["params"] < count_params(sub)
    at = list(info.trials).index(pruned["trial"])
    assert info.xs[at] == pruned["accuracy"] and info.ys[at] == pruned["params"]


def test_bad_arguments_change_nothing():
    model = mlp()
    before = snapshot(model)
    with pytest.raises(MaskError):
        sweep(model, ["magnitude"], [1.0], [params()])
    with pytest.raises(ConfigError, match="unknown pruning method"):
        sweep(model, ["snip"], [0.5], [params()])
    with pytest.raises(ConfigError, match="objectives"):
        sweep(model, ["magnitude"], [0.5], None)
    with pytest.raises(ConfigError, match="no function"):
        sweep(model, ["magnitude"], [0.5], [Objective("loss", "minimize")])
    with pytest.raises(ConfigError, match="unique"):
        sweep(model, ["magnitude"], [0.5], [params(), params()])
    with pytest.raises(MaskError, match="no prunable"):
        sweep(nn.Sequential(nn.ReLU()), ["magnitude"], [0.5], [params()])
    with pytest.raises(ConfigError, match=r"finetune must be None, one of \('distill', 'train'\)"):
        sweep(model, ["magnitude"], [0.5], [params()], finetune="kd")
    with pytest.raises(ConfigError, match="needs finetune_data="):
        sweep(model, ["magnitude"], [0.5], [params()], finetune="distill", finetune_steps=5)
    with pytest.raises(ConfigError, match="finetune_steps must be an int >= 1"):
        sweep(model, ["magnitude"], [0.5], [params()], finetune="train", finetune_data=(X, X))
    with pytest.raises(ConfigError, match="go with finetune in"):
        sweep(model, ["magnitude"], [0.5], [params()], finetune_steps=5)
    with pytest.raises(ConfigError, match=r"may not set \['epochs'\]"):
        sweep(model, ["magnitude"], [0.5], [params()], finetune="distill", finetune_data=X,
              finetune_steps=3, finetune_options={"epochs": 2})  # fmt: skip
    assert unchanged(model, before)


def test_distillation_recovers_what_pruning_lost_and_leaves_the_model_alone():
    """A classifier trained on digits, pruned to 93% by magnitude: fine-tuning by distillation
    from the unpruned model (the training layer's recover) and on the labels both recover
    accuracy over no fine-tuning; the user's model is never changed."""
    from nasviz.data import digits
    from nasviz.training import train

    data = digits(seed=0, flat=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    train(model, data, epochs=4, batch_size=32, lr=1e-2, seed=0).run()
    model.eval()
    before = snapshot(model)
    subset = (data.train.X[:512], data.train.y[:512])
    common = {"finetune_data": subset, "finetune_steps": 40, "finetune_options": {"lr": 3e-3}}
    rows = {}
    for how in (None, "distill", "train"):
        options = common if how else {}
        run = sweep(model, ["magnitude"], [0.93], [accuracy(data.val)], finetune=how, **options)
        assert run.run().state == "finished", run.traceback
        rows[how] = run.results.iloc[0]
    assert unchanged(model, before)
    assert rows["distill"]["accuracy"] > rows[None]["accuracy"] + 3
    assert rows["train"]["accuracy"] > rows[None]["accuracy"] + 3
    assert rows["distill"]["finetune_loss"] > 0 and "finetune_loss" not in rows[None]
    assert rows["distill"]["weight_sparsity"] == pytest.approx(0.93, abs=1e-3)  # masks held
