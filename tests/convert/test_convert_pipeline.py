"""A converted model with the rest of nasviz: a "pre-trained" ResNet-style CNN (trained here on
digits) is converted, elastic fine-tuned with the sandwich rule, evaluated per subnet with the
training layer and searched."""

from __future__ import annotations

import pytest
import torch
from convert_models import ResNet, state_hash

from nasviz.data import digits
from nasviz.objectives import accuracy, macs, params
from nasviz.search import Search
from nasviz.supernet import convert, train_supernet
from nasviz.training import Accuracy, evaluate, train


def _trained():
    data = digits()
    torch.manual_seed(0)
    model = ResNet(width=8)
    subset = (data.train.X[:600], data.train.y[:600])  # small: CI cores are shared
    train(model, subset, epochs=3, batch_size=32, lr=1e-2, seed=0).run()
    return data, subset, model.eval()


def test_fine_tune_evaluate_and_search_a_converted_model():
    data, subset, model = _trained()
    original = evaluate(model, data, [Accuracy()])["accuracy"]
    assert original > 50  # it learned something (percent)
    sn = convert(model, data.val.X[:8])
    before = state_hash(model)
    # the largest subnet is the model: same accuracy before fine-tuning
    assert evaluate(sn, data, [Accuracy()], arch=sn.largest())["accuracy"] == original
    assert state_hash(model) == before
    small = sn.smallest()
    untuned = evaluate(sn, data, [Accuracy()], arch=small)["accuracy"]
    run = train_supernet(
        sn, subset, epochs=2, batch_size=32, lr=1e-2, n_random=1, teacher="original", seed=0
    )  # InstaTune: the largest keeps learning from a frozen copy of the model it was
    teacher = run.engine.step_fn.teacher
    assert isinstance(teacher, ResNet) and not any(p.requires_grad for p in teacher.parameters())
    assert evaluate(teacher, data, [Accuracy()])["accuracy"] == original
    run.run()
    assert run.state == "finished", run.traceback
    assert state_hash(model) != before  # shared parameters: fine-tuning trained the model
    assert evaluate(teacher, data, [Accuracy()])["accuracy"] == original  # the copy is frozen
    tuned = evaluate(sn, data, [Accuracy()], arch=small)["accuracy"]
    largest = evaluate(sn, data, [Accuracy()], arch=sn.largest())["accuracy"]
    # BN statistics are re-calibrated per subnet (train_supernet keeps calibration inputs)
    assert sn.calibration_inputs is not None
    assert tuned > untuned + 5 and largest >= original - 5
    # the export of the fine-tuned smallest subnet is the user's class and scores the same
    static = sn.export(small)
    assert isinstance(static, ResNet)
    assert evaluate(static, data, [Accuracy()])["accuracy"] == pytest.approx(tuned, abs=1e-9)

    objectives = [accuracy((data.val.X[:120], data.val.y[:120])), macs((1, 1, 8, 8)), params()]
    search = Search(
        sn, objectives=objectives, strategy="random", budget=6, storage=":memory:", seed=0
    )
    assert search.start().wait(timeout=300).state == "finished", search.traceback
    frame = search.results
    assert (frame["state"] == "COMPLETE").all() and len(frame) == 6
    assert frame["macs"].nunique() > 1 and frame["accuracy"].between(0, 100).all()
