"""Quantization-aware fine-tuning on the training layer: QAT wins back what 3-bit PTQ loses on
held-out digits; checkpoints resume exactly; recover distils a fake-quantized student from the
full-precision teacher; the user's model never changes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from quant_helpers import state_hash

from nasviz.errors import CheckpointError, ConfigError, ShapeError
from nasviz.quant import (
    FakeQuantize,
    QATRun,
    QuantizedWeight,
    convert,
    describe,
    prepare_qat,
    qat,
    quantize,
)
from nasviz.training import recover

# 3-bit symmetric codes (8 levels, one of them unused by a symmetric range): on the trained
# 64-64-64-10 MLP, PTQ loses about 1.3 points of held-out accuracy; 4 bits lose almost nothing
# on a model this small, so they would not show a recovery.
BITS, SYMMETRIC, STEPS = 3, True, 40


def _held_out(model, data) -> tuple[float, float]:
    """(accuracy %, cross-entropy) on val + test (538 digits the MLP never trained on)."""
    X = torch.cat([data.val.X, data.test.X])
    y = torch.cat([data.val.y, data.test.y])
    with torch.no_grad():
        out = model(X)
    return 100.0 * float((out.argmax(-1) == y).float().mean()), float(F.cross_entropy(out, y))


@pytest.fixture(scope="module")
def ptq(trained_mlp, digits_data):
    return _held_out(quantize(trained_mlp, BITS, symmetric=SYMMETRIC), digits_data)


def _finished(run):
    status = run.run()
    assert status.state == "finished", run.traceback
    return run


def test_qat_recovers_what_ptq_loses_and_leaves_the_model_alone(trained_mlp, digits_data, ptq):
    before = state_hash(trained_mlp)
    full, _ = _held_out(trained_mlp, digits_data)
    assert ptq[0] < full - 0.5  # PTQ loses accuracy at 3 bits
    run = qat(trained_mlp, digits_data, bits=BITS, symmetric=SYMMETRIC, steps=STEPS, seed=0)
    assert isinstance(run, QATRun) and run.model is not trained_mlp
    assert isinstance(run.model[1].parametrizations.weight[0], FakeQuantize)
    _finished(run)
    q = run.quantized()
    assert isinstance(q[1].parametrizations.weight[0], QuantizedWeight)
    table = describe(q)
    assert set(table["bits"]) == {BITS} and set(table["kernel"]) == {"simulated"}
    acc, nll = _held_out(q, digits_data)
    assert acc > ptq[0] and nll < ptq[1]
    assert acc - ptq[0] >= 0.5 * (full - ptq[0])  # at least half of the loss is won back
    assert len(run.history.query("member == 'loss'")) == STEPS
    assert state_hash(trained_mlp) == before
    with torch.no_grad():  # the stored codes compute what the fake-quantized copy computed
        X = digits_data.test.X
        torch.testing.assert_close(q(X), run.model.eval()(X), atol=1e-5, rtol=1e-5)


def test_qat_distilled_from_the_full_precision_model(trained_mlp, digits_data, ptq):
    before = state_hash(trained_mlp)
    run = qat(
        trained_mlp,
        digits_data,
        bits=BITS,
        symmetric=SYMMETRIC,
        steps=STEPS,
        seed=0,
        teacher=trained_mlp,
    )
    _finished(run)
    assert set(run.history["member"]) == {"total", "distill", "task"}
    acc, nll = _held_out(run.quantized(), digits_data)
    assert acc > ptq[0] and nll < ptq[1]
    assert state_hash(trained_mlp) == before and not trained_mlp.training


def test_recover_trains_a_fake_quantized_student_from_its_teacher(trained_mlp, digits_data, ptq):
    before = state_hash(trained_mlp)
    student = prepare_qat(trained_mlp, BITS, symmetric=SYMMETRIC)
    original = student[3].parametrizations.weight.original
    start = original.detach().clone()
    run = recover(
        student,
        trained_mlp,
        digits_data,
        steps=STEPS,
        seed=0,
        hidden=[("3", "3")],  # the fake-quantized layer's output against the teacher's
    )
    _finished(run)
    assert run.model is student and not torch.equal(original.detach(), start)
    assert {"distill", "hidden"} <= set(run.history["member"])
    acc, nll = _held_out(convert(student).eval(), digits_data)
    assert acc > ptq[0] and nll < ptq[1]
    assert state_hash(trained_mlp) == before


def test_a_stopped_qat_run_resumes_from_its_checkpoint_exactly(trained_mlp, digits_data, tmp_path):
    options = {"bits": 4, "steps": 12, "seed": 1, "batch_size": 32}
    path = tmp_path / "qat.pt"
    first = qat(trained_mlp, digits_data, checkpoint=path, **options)

    def stop_at_five(event):
        if event.kind == "loss" and event.data["step"] == 5:
            first.stop(wait=False)

    first.subscribe(stop_at_five)
    assert first.start().wait(120).state == "stopped", first.traceback
    assert path.exists()
    resumed = qat(trained_mlp, digits_data, checkpoint=path, **options)
    assert resumed.status.done == 5
    _finished(resumed)
    straight = _finished(qat(trained_mlp, digits_data, **options))
    assert state_hash(resumed.model) == state_hash(straight.model)
    assert state_hash(resumed.quantized()) == state_hash(straight.quantized())
    with pytest.raises(CheckpointError, match="qat"):  # a checkpoint of other bits
        qat(trained_mlp, digits_data, checkpoint=path, **{**options, "bits": 3})


def test_quantized_refuses_while_the_run_trains(trained_mlp, digits_data):
    run = qat(trained_mlp, digits_data, bits=4, steps=4, seed=0)
    errors = []

    def during(event):
        if event.kind == "loss" and event.data["step"] == 2:
            try:
                run.quantized()
            except ConfigError as exc:
                errors.append(str(exc))

    run.subscribe(during)
    _finished(run)
    assert len(errors) == 1 and "wait()" in errors[0]


def test_bad_qat_calls_raise_and_change_nothing(trained_mlp, digits_data):
    before = state_hash(trained_mlp)
    X, y = digits_data.train.X, digits_data.train.y
    cases = [
        (lambda: qat(trained_mlp, digits_data, bits=5, steps=2), ConfigError, "bits=5"),
        (
            lambda: qat(trained_mlp, digits_data, bits={"9": 4}, steps=2),
            ConfigError,
            "does not have",
        ),
        (lambda: qat(trained_mlp, digits_data, steps=0), ConfigError, "steps"),
        (
            lambda: qat(trained_mlp, digits_data, steps=2, teachr=trained_mlp),
            ConfigError,
            r"qat has no option 'teachr' \(did you mean 'teacher'\?\)",
        ),
        (
            lambda: qat(trained_mlp, (X.reshape(len(X), -1)[:, :10], y), steps=2),
            ShapeError,
            "shape",
        ),
        (
            lambda: qat(trained_mlp, digits_data, steps=2, alpha=0.5),
            ConfigError,
            "needs teacher",
        ),
        (
            lambda: qat(quantize(trained_mlp, 4), digits_data, steps=2),
            ConfigError,
            "already quantized",
        ),
        (
            lambda: qat(trained_mlp, digits_data, steps=2, step=None),
            ConfigError,
            "no option .step.",
        ),
    ]
    for call, error, needle in cases:
        with pytest.raises(error, match=needle):
            call()
        assert state_hash(trained_mlp) == before
