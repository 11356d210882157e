"""Function searches over the user's own models: the function builds and trains a model per arch
and returns it; nasviz's objectives measure it, and the front's trained models are kept."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from nasviz.data import digits
from nasviz.errors import ConfigError
from nasviz.objectives import accuracy, count_params, macs, params
from nasviz.search import Search
from nasviz.space import SearchSpace
from nasviz.training import Accuracy, evaluate, train

SPACE = SearchSpace({"width": [4, 16, 48], "depth": [1, 2]})
DATA = digits(seed=0, flat=True)
SUBSET = (DATA.train.X[:300], DATA.train.y[:300])


def build(arch) -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(arch["depth"]):
        layers += [nn.Linear(width, arch["width"]), nn.ReLU()]
        width = arch["width"]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def build_and_train(arch) -> nn.Module:
    torch.manual_seed(0)
    model = build(arch)
    train(model, SUBSET, epochs=2, batch_size=32, lr=1e-2, seed=0).run()
    return model.eval()


def with_extras(arch):
    return build_and_train(arch), {"note": f"w{arch['width']}"}


def test_objectives_measure_the_returned_model_and_the_fronts_models_are_kept(tmp_path):
    objectives = [accuracy(DATA.val), params(), macs((1, 64))]
    search = Search(
        build_and_train, SPACE, objectives=objectives, strategy="random", budget=6,
        storage=str(tmp_path / "s.journal"), seed=0, keep_models=tmp_path / "models",
    )  # fmt: skip
    assert search.run().state == "finished", search.traceback
    frame = search.results.set_index("trial")
    assert (frame["state"] == "COMPLETE").all() and len(frame) == 6
    for _trial, row in frame.iterrows():
        arch = {"width": int(row["width"]), "depth": int(row["depth"])}
        assert row["params"] == count_params(build(arch))  # measured on the returned model
        assert row["macs"] == 64 * arch["width"] + (arch["depth"] - 1) * arch["width"] ** 2 + (
            arch["width"] * 10
        )
        assert 0 <= row["accuracy"] <= 100
    front = sorted(int(t) for t in search.pareto()["trial"])
    assert search.kept.kept() == front  # off-front models were removed when the run ended
    assert len(front) < 6
    best = int(search.pareto()["accuracy"].idxmax())
    trial = int(search.pareto().loc[best, "trial"])
    arch = {"width": int(frame.loc[trial, "width"]), "depth": int(frame.loc[trial, "depth"])}
    model = search.load_model(trial, build(arch)).eval()
    acc = evaluate(model, DATA.val, [Accuracy()])["accuracy"]
    assert acc == pytest.approx(frame.loc[trial, "accuracy"], abs=1e-9)  # the trained weights
    off = next(t for t in frame.index if t not in front)
    with pytest.raises(
        ConfigError, match=f"no kept model for trial {off} .* kept: " + re.escape(str(front))
    ):
        search.load_model(off, build(arch))
    browse = Search.load(tmp_path / "s.journal", keep_models=tmp_path / "models")
    assert browse.load_model(trial, build(arch)) is not None  # a loaded search reads them too


def test_a_model_with_extra_values_and_objectives_that_need_a_model(tmp_path):
    search = Search(
        with_extras, SPACE, objectives=[params(), ("loss", "minimize")], strategy="random",
        budget=2, storage=":memory:", seed=0,
    )  # fmt: skip
    assert search.run().state == "failed"  # "loss" is neither measured nor returned
    assert "all 2 evaluations failed" in str(search.error)
    frame = search.results
    assert frame["error"].str.contains("returned no 'loss'").all()
    ok = Search(with_extras, SPACE, objectives=[params()], strategy="random", budget=2,
                storage=":memory:", seed=0)  # fmt: skip
    assert ok.run().state == "finished" and set(ok.results["note"]) <= {"w4", "w16", "w48"}
    dicts = Search(lambda a: {"loss": a["width"]}, SPACE, objectives=[params(), ("loss", "minimize")],
                   strategy="random", budget=2, storage=":memory:", seed=0)  # fmt: skip
    assert dicts.run().state == "failed" and "all 2 evaluations failed" in str(dicts.error)
    assert (
        dicts.results["error"]
        .str.contains(
            "objective 'params' measures a model: the evaluation function must return the model"
        )
        .all()
    )


def test_a_plain_model_is_refused_and_keep_models_needs_a_function():
    from nasviz.supernet import ElasticMLP

    with pytest.raises(
        ConfigError, match=r"torch model \(Sequential\) that is not a supernet.*convert"
    ):
        Search(build({"width": 4, "depth": 1}), SPACE, objectives=[params()], storage=":memory:")
    with pytest.raises(ConfigError, match="keep_models is for a function that returns"):
        Search(ElasticMLP(), objectives=[params()], storage=":memory:", keep_models="m")
    with pytest.raises(ConfigError, match="keep_models must be a folder path, got int"):
        Search(build_and_train, SPACE, objectives=[params()], storage=":memory:", keep_models=3)
