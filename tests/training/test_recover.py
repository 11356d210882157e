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


def _base_weights(mixed: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """For each row k of ``mixed``: the largest ``lam`` with ``mixed[k] = lam * X[k] + (1 -
    lam) * X[j]`` over rows j (fails when no j gives it)."""
    diff = X[None, :, :] - X[:, None, :]  # (k, j, d): X[j] - X[k]
    offset = (mixed - X)[:, None, :]  # (k, 1, d) = (1 - lam) * (X[j] - X[k])
    share = (offset * diff).sum(-1) / (diff * diff).sum(-1).clamp_min(1e-12)  # (k, j)
    share = share.clamp(0, 1)
    error = (share[..., None] * diff - offset).norm(dim=-1)  # (k, j)
    best = error.argmin(dim=1)
    rows = torch.arange(len(X))
    assert float(error[rows, best].max()) < 1e-4, "a row is not a mix of its input and another"
    return 1 - share[rows, best]


def test_mixing_keeps_each_row_the_larger_part_of_its_mix():
    from nasviz.training._recover import _mixed

    X, y = blobs(64, classes=4, seed=3)
    torch.manual_seed(0)
    mixed, labels = _mixed((X, y), 1.0)
    assert labels is y and mixed.shape == X.shape
    lam = _base_weights(mixed, X)
    assert float(lam.min()) >= 0.5 - 1e-5 and float(lam.max()) <= 1 + 1e-5
    assert float(lam.median()) < 0.9  # mixes, not copies (Beta(1, 1) folded: median 0.75)
    torch.manual_seed(0)
    assert torch.equal(_mixed(X, 1.0), mixed)  # a bare tensor batch mixes the same way


def test_mixup_shows_both_models_the_same_mixes_of_two_inputs(teacher):
    """Every input the student sees is lam * x_i + (1 - lam) * x_j of two inputs of its batch
    with lam >= 0.5; the teacher sees the same tensor; the labels are those of x_i; a seed gives
    the same mixes and the same weights."""
    X, y = blobs(64, classes=4, seed=3)
    seen: dict[str, list[torch.Tensor]] = {"student": [], "teacher": []}

    def run_once():
        for v in seen.values():
            v.clear()
        student = mlp(classes=4, hidden=8, seed=2)
        hooks = [
            m.register_forward_pre_hook(lambda _m, args, k=k: seen[k].append(args[0].clone()))
            for k, m in (("student", student), ("teacher", teacher))
        ]
        try:
            run = recover(student, teacher, (X, y), steps=3, batch_size=16, mixup=1.0, seed=4)
            assert run.run().state == "finished", run.traceback
        finally:
            for h in hooks:
                h.remove()
        return student, list(seen["student"]), list(seen["teacher"])

    student, inputs, teacher_inputs = run_once()
    assert len(inputs) >= 3  # the run's 3 steps come last (checks may look at a batch before)
    for s_in, t_in in zip(inputs[-3:], teacher_inputs[-3:], strict=True):
        assert torch.equal(s_in, t_in)
        nearest = torch.cdist(s_in, X).min(dim=1).values  # distance to the closest raw input
        assert float(nearest.median()) > 1e-3  # the models saw mixes, not the raw inputs
    again, inputs_again, _ = run_once()
    assert all(torch.equal(p, q) for p, q in zip(inputs, inputs_again, strict=True))
    assert same_weights(weights(student), weights(again))


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
    from nasviz.quant import quantize

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
        (lambda: recover(student, teacher, X, steps=2, mixup=0), ConfigError, "mixup"),
        (
            lambda: recover(student, teacher, X, steps=2, tempreature=2.0),
            ConfigError,
            r"recover has no option 'tempreature' \(did you mean 'temperature'\?\)",
        ),
        (
            lambda: recover(quantize(student, 4), teacher, X, steps=2),
            ConfigError,
            r"every weight of this Sequential is post-training quantized codes .*prepare_qat",
        ),
        (
            lambda: recover(student, teacher, X, steps=2, step=None),
            ConfigError,
            "recover has no option 'step'",
        ),
    ]
    for call, error, needle in cases:
        with pytest.raises(error, match=needle):
            call()
        assert fingerprint(student) == before and fingerprint(teacher) == teacher_before


def test_mixup_refuses_token_ids():
    def tokens_model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(32, 4))

    student, teacher = tokens_model(0), tokens_model(1)
    before = fingerprint(student)
    ids = torch.randint(0, 20, (16, 8))
    with pytest.raises(ConfigError, match="mixup mixes floating-point input tensors"):
        recover(student, teacher, ids, steps=2, mixup=1.0)
    assert fingerprint(student) == before
    assert recover(student, teacher, ids, steps=2, batch_size=8).run().state == "finished"


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


def test_a_partly_quantized_student_trains_its_float_layers(teacher):
    """Only a model with no float weight matrix left is refused: one quantized layer of two
    leaves the other to train."""
    from nasviz.quant import quantize

    X, _ = blobs(32, classes=4)
    student = quantize(mlp(classes=4, hidden=8), 4, include="0")
    before = {k: v.clone() for k, v in student.state_dict().items()}
    assert recover(student, teacher, X, steps=2).run().state == "finished"
    after = student.state_dict()
    assert not torch.equal(after["3.weight"], before["3.weight"])  # the float layer trained
    assert torch.equal(after["0.parametrizations.weight.0.packed"],
                       before["0.parametrizations.weight.0.packed"])  # fmt: skip
