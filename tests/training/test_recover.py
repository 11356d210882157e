"""recover: distillation brings a student back towards its teacher; hidden-state matching with
learned projections; the teacher never changes; a TrainingMonitor shows the run."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from training_helpers import blobs, fingerprint, mlp, same_weights, weights

from nasviz import recover
from nasviz.errors import ConfigError, ShapeError
from nasviz.supernet import ElasticCNN
from nasviz.training import train
from nasviz.training._recover import auto_pairs


@pytest.fixture(scope="module")
def teacher():
    """A classifier trained first (the 'pre-trained' model of these tests)."""
    X, y = blobs(128, classes=4, seed=3)
    model = mlp(classes=4, hidden=32, seed=1)
    train(model, (X, y), epochs=20, batch_size=32, lr=1e-2).run()
    return model.eval()


def _agreement(student, teacher, X):
    with torch.no_grad():
        return float((student(X).argmax(-1) == teacher(X).argmax(-1)).float().mean())


def test_distillation_recovers_the_teachers_predictions(teacher):
    X, _ = blobs(128, classes=4, seed=3)
    student = mlp(classes=4, hidden=8, seed=2)  # smaller, untrained
    teacher.train()  # its mode must come back as it was
    before = fingerprint(teacher)
    start = _agreement(student, teacher, X)
    run = recover(student, teacher, X, steps=60, batch_size=32, lr=1e-2)  # no labels: KD only
    assert run.run().state == "finished", run.traceback
    assert run.model is student and fingerprint(teacher) == before
    assert set(run.history["member"]) == {"total", "distill"}
    assert _agreement(student, teacher, X) > max(start, 0.9)
    kd = run.history.query("member == 'distill'")["loss"]
    assert kd.iloc[-5:].mean() < 0.6 * kd.iloc[:5].mean()
    teacher.eval()


def test_labels_mix_in_the_task_loss(teacher):
    X, y = blobs(128, classes=4, seed=3)
    run = recover(mlp(classes=4, hidden=8), teacher, (X, y), steps=4, batch_size=32, alpha=0.7)
    assert run.run().state == "finished", run.traceback
    rows = run.history[run.history["step"] == 4].set_index("member")["loss"]
    assert set(rows.index) == {"total", "distill", "task"}
    assert rows["total"] == pytest.approx(0.7 * rows["distill"] + 0.3 * rows["task"], rel=1e-5)


def test_hidden_states_match_through_learned_projections(teacher, tmp_path):
    X, _ = blobs(128, classes=4, seed=3)
    options = {
        "steps": 8,
        "batch_size": 32,
        "lr": 1e-2,
        "hidden": [("1", "1")],
        "hidden_weight": 0.5,
    }
    student = mlp(classes=4, hidden=8, seed=2)
    run = recover(student, teacher, X, **options)
    step = run.engine.step_fn
    assert isinstance(step.projections["p0"], nn.Linear)
    assert step.projections["p0"].weight.shape == (32, 8)  # student width 8 -> teacher 32
    projection = weights(step.projections)
    assert run.run().state == "finished", run.traceback
    assert not same_weights(weights(step.projections), projection)  # the projection learned
    hidden = run.history.query("member == 'hidden'")["loss"]
    assert len(hidden) == 8 and hidden.iloc[-1] < hidden.iloc[0]
    # projections are part of the checkpoint: a resumed run ends where the whole one did
    path = tmp_path / "recover.pt"
    resumed_student = mlp(classes=4, hidden=8, seed=2)
    first = recover(resumed_student, teacher, X, checkpoint=path, **options)
    first.subscribe(lambda e: e.kind == "loss" and e.data["step"] == 3 and first.stop(wait=False))
    first.start()
    assert first.wait(60).state == "stopped"
    again = recover(mlp(classes=4, hidden=8, seed=7), teacher, X, checkpoint=path, **options)
    assert again.status.done == 3 and again.run().state == "finished"
    assert same_weights(weights(again.model), weights(student))
    assert same_weights(weights(again.engine.step_fn.projections), weights(step.projections))


def test_conv_feature_maps_project_their_channels():
    torch.manual_seed(0)

    def cnn(width):
        return nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, 3),
        )

    X = torch.randn(32, 1, 6, 6)
    run = recover(cnn(4), cnn(8).eval(), X, steps=3, batch_size=16, hidden=[("0", "0")])
    assert run.engine.step_fn.projections["p0"].weight.shape == (8, 4)  # channels 4 -> 8
    assert run.run().state == "finished", run.traceback


def test_auto_pairs_the_blocks_of_same_depth_models():
    net = ElasticCNN()
    largest, smallest = net.largest(), net.smallest()
    narrower = {k: smallest[k] if k.startswith("expand") else v for k, v in largest.items()}
    teacher, student = net.export(largest), net.export(narrower)  # same depth, thinner blocks
    pairs = auto_pairs(student, teacher)
    blocks = [str(i) for i, m in enumerate(teacher) if next(m.children(), None) is not None]
    assert pairs == [(b, b) for b in blocks] and len(pairs) >= 4
    X = torch.randn(16, 1, 8, 8)
    run = recover(student, teacher, X, steps=2, batch_size=8, hidden="auto")
    assert run.run().state == "finished", run.traceback
    assert "hidden" in set(run.history["member"])


def test_bad_recover_calls_change_nothing(teacher):
    X, _ = blobs(32, classes=4)
    student = mlp(classes=4, hidden=8)
    before, teacher_before = fingerprint(student), fingerprint(teacher)
    cases = [
        (lambda: recover(student, student, X, steps=2), ConfigError, "separate model"),
        (
            lambda: recover(student, teacher, X, steps=2, hidden=[("9", "1")]),
            ConfigError,
            "student has no layer '9'",
        ),
        (
            lambda: recover(student, teacher, X, steps=2, hidden="auto"),
            ConfigError,
            "found no blocks",
        ),
        (
            lambda: recover(student, teacher, X, steps=2, temperature=0),
            ConfigError,
            "temperature must be > 0",
        ),
        (lambda: recover(mlp(classes=3), teacher, X, steps=2), ShapeError, "outputs of one shape"),
        (lambda: recover(student, teacher, X, steps="2"), ConfigError, "steps must be an int"),
    ]
    for call, error, needle in cases:
        with pytest.raises(error, match=needle):
            call()
        assert fingerprint(student) == before and fingerprint(teacher) == teacher_before


def test_a_training_monitor_follows_a_recover_run(teacher):
    from nasviz.ui import TrainingMonitor
    from nasviz.viz._training import loss_info

    X, y = blobs(64, classes=4, seed=3)
    run = recover(mlp(classes=4, hidden=8), teacher, (X, y), steps=6, batch_size=32)
    monitor = TrainingMonitor(run, rate=50)
    monitor._repr_mimebundle_()  # displayed: the figure widget exists from now on
    monitor.controls.press("start")
    assert run.wait(60).state == "finished", run.traceback
    monitor.throttle.flush_now()
    assert set(monitor.series) == {"total", "distill", "task"}
    info = loss_info(run.history)
    for member in ("total", "distill", "task"):
        assert monitor.series[member].values("y") == list(info.losses[member])
        assert monitor.series[member].values("x") == list(range(1, 7))
    assert "finished" in monitor.controls.status_line.value
    monitor.close()
