"""Training: sandwich members, events, background control and exact resumption."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch

from nasviz.errors import CheckpointError, ConfigError, RunError, ShapeError
from nasviz.supernet import ElasticCNN, ElasticMLP, SupernetTrainer, train_supernet


def _small(data, n=200):
    return data.train.subset(n)


def _params(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_events_history_and_members(digits_data):
    torch.manual_seed(0)
    net = ElasticMLP()
    run = train_supernet(net, digits_data, epochs=1, batch_size=256, n_random=2)
    events = []
    run.subscribe(events.append)
    status = run.run()
    assert status.state == "finished" and status.done == status.total == 5
    losses = [e for e in events if e.kind == "loss"]
    assert [e.data["step"] for e in losses] == [1, 2, 3, 4, 5]
    assert set(losses[0].data["losses"]) == {"largest", "smallest", "random1", "random2"}
    history = run.history
    assert len(history) == 5 * 4 and set(history.columns) >= {"step", "member", "loss"}
    evals = [e for e in events if e.kind == "eval"]
    assert len(evals) == 1 and 0 <= evals[0].data["val_largest"] <= 100
    assert not net.training  # handed back ready for evaluation


def test_delay_and_progressive_shrinking_open_dimensions_in_order(digits_data):
    net = ElasticCNN()
    eng = SupernetTrainer(
        net,
        _small(digits_data),
        epochs=4,
        batch_size=100,
        shrinking="progressive",
        delay=0.25,
        ramp=0.25,
    )
    assert eng.total == 8
    assert [m[0] for m in eng.members(2)] == ["largest"]  # DεpS: only the largest at first
    largest = net.largest()
    for step, opened in (
        (3, {"kernel"}),
        (4, {"kernel", "depth"}),
        (7, {"kernel", "depth", "expand"}),
    ):
        for name, arch, _weight in eng.members(step)[1:]:
            changed = {k.split(".")[0] for k in arch if arch[k] != largest[k]}
            assert changed <= opened, (step, name, arch)
    assert 0 < eng.members(3)[1][2] < 1 == eng.members(7)[1][2]  # small subnets' weight ramps up
    smallest = dict(eng.members(7)[1][1])
    assert smallest == dict(net.smallest())


@pytest.fixture(scope="module")
def uninterrupted(digits_data):
    """Weights of an ElasticMLP trained 2 epochs on 200 examples (8 steps) without a break."""
    torch.manual_seed(0)
    reference = ElasticMLP()
    train_supernet(reference, _small(digits_data), epochs=2, batch_size=50, eval_every=5).run()
    return _params(reference)


def test_stop_then_start_resumes_exactly(digits_data, uninterrupted, tmp_path):
    data = _small(digits_data)
    torch.manual_seed(0)
    net = ElasticMLP()
    ckpt = tmp_path / "train.pt"
    run = train_supernet(net, data, epochs=2, batch_size=50, checkpoint=ckpt, eval_every=5)
    run.subscribe(lambda e: e.kind == "loss" and e.data["step"] == 3 and run.stop(wait=False))
    run.start()
    status = run.wait(timeout=60)
    assert status.state == "stopped" and status.done == 3 and ckpt.exists()
    with pytest.raises(RunError):
        run.pause()
    # a fresh trainer resumes from the checkpoint; the original continues in memory
    torch.manual_seed(1)
    other = ElasticMLP()
    resumed = train_supernet(other, data, epochs=2, batch_size=50, checkpoint=ckpt, eval_every=5)
    assert resumed.status.done == 3
    resumed.run()
    run.start().wait(timeout=60)
    expected = uninterrupted
    for trained in (net, other):
        got = trained.state_dict()
        assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in expected)
    with pytest.raises(CheckpointError, match="batch_size=50 in the checkpoint but 25 now"):
        train_supernet(ElasticMLP(), data, epochs=2, batch_size=25, checkpoint=ckpt)


def test_bad_training_input(digits_data):
    with pytest.raises(ConfigError, match="shrinking"):
        train_supernet(ElasticMLP(), digits_data, shrinking="sometimes")
    with pytest.raises(ConfigError, match="Supernet"):
        train_supernet(torch.nn.Linear(2, 2), digits_data)
    with pytest.raises(ShapeError, match="expects"):
        train_supernet(ElasticMLP(in_features=10), digits_data)
    with pytest.raises(ConfigError, match=r"no option 'epoch' \(did you mean 'epochs'\?\)"):
        train_supernet(ElasticMLP(), digits_data, epoch=2)


def test_pause_holds_the_steps_and_resume_finishes(digits_data, uninterrupted):
    torch.manual_seed(0)
    net = ElasticMLP()
    run = train_supernet(net, _small(digits_data), epochs=2, batch_size=50, eval_every=5)
    paused = threading.Event()
    run.subscribe(lambda e: e.kind == "loss" and e.data["step"] == 2 and run.pause())
    run.subscribe(lambda e: e.kind == "status" and e.data.state == "paused" and paused.set())
    run.start()
    assert paused.wait(timeout=60)
    held = run.status.done
    time.sleep(0.3)  # a running run would take several steps meanwhile
    assert run.status.state == "paused" and run.status.done == held == run.engine.step_index
    with pytest.raises(RunError):
        run.start()
    run.resume()
    status = run.wait(timeout=60)
    assert status.state == "finished" and status.done == status.total == 8
    got = net.state_dict()  # the pause changed nothing
    assert all(torch.allclose(got[k], uninterrupted[k], atol=1e-6) for k in uninterrupted)


# ---- on the training loop: any data form, devices, precision, a teacher, bad input ---------
def _fingerprint(net):
    state = {k: v.clone() for k, v in net.state_dict().items()}
    return state, str(next(net.parameters()).device), [m.training for m in net.modules()]


def _same(a, b):
    return a[1:] == b[1:] and all(torch.equal(a[0][k], b[0][k]) for k in a[0])


def test_a_dataloader_trains_exactly_like_the_tensors(digits_data):
    from torch.utils.data import DataLoader, TensorDataset

    split = _small(digits_data, 120)
    nets = []
    for data in (split, DataLoader(TensorDataset(split.X, split.y), batch_size=40, shuffle=True)):
        torch.manual_seed(0)
        net = ElasticMLP()
        options = {"batch_size": 40} if data is split else {}
        run = train_supernet(net, data, epochs=2, seed=3, **options)
        assert run.run().state == "finished", run.traceback
        nets.append(net)
    assert all(
        torch.equal(a, b)
        for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values(), strict=True)
    )


def test_a_stream_trains_for_steps_and_calibrates_from_it(digits_data):
    from torch.utils.data import IterableDataset

    split = _small(digits_data, 200)

    class Stream(IterableDataset):
        def __iter__(self):
            yield from zip(split.X, split.y, strict=True)

        def __getitem__(self, i):
            raise AssertionError("a stream was indexed")

    net = ElasticCNN()
    run = train_supernet(net, Stream(), steps=4, batch_size=32, calibration_samples=50)
    assert run.run().state == "finished", run.traceback
    assert net.calibration_inputs.shape == (50, 1, 8, 8)
    assert torch.equal(net.calibration_inputs, split.X[:50])  # read in order, only as far as needed


def test_bf16_and_a_separate_teacher(digits_data):
    data = _small(digits_data, 100)
    torch.manual_seed(0)
    teacher = ElasticMLP().export(ElasticMLP().largest())
    teacher.train()
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    net = ElasticMLP()
    run = train_supernet(
        net, data, epochs=1, batch_size=50, precision="bf16", teacher=teacher, distill=0.7
    )
    assert run.run().state == "finished", run.traceback
    assert teacher.training and all(
        torch.equal(v, teacher_state[k]) for k, v in teacher.state_dict().items()
    )
    losses = run.history
    assert set(losses["member"]) == {"largest", "smallest", "random1", "random2"}
    assert losses["loss"].notna().all()
    torch.manual_seed(0)
    alone = ElasticMLP()  # the same run without the teacher ends elsewhere
    train_supernet(alone, data, epochs=1, batch_size=50, precision="bf16", distill=0.7).run()
    assert not torch.equal(alone.head.weight, net.head.weight)


def test_the_original_as_teacher_stays_frozen_and_resumes_from_the_checkpoint(
    digits_data, tmp_path
):
    data = _small(digits_data, 100)
    torch.manual_seed(0)
    net = ElasticMLP()
    start = net.export(net.largest()).state_dict()
    options = {"epochs": 2, "batch_size": 25, "distill": 0.7, "checkpoint": tmp_path / "c.pt"}
    run = train_supernet(net, data, teacher="original", **options)
    teacher = run.engine.step_fn.teacher
    assert run.engine.settings["teacher"] == "original" and not teacher.training
    run.subscribe(lambda e: run.stop(wait=False) if e.kind == "loss" and e.data["step"] == 3 else 0)
    assert run.run().state == "stopped"
    now = net.export(net.largest()).state_dict()
    assert not all(torch.equal(v, start[k]) for k, v in now.items())  # the net trained...
    assert all(torch.equal(v, start[k]) for k, v in teacher.state_dict().items())  # not it
    resumed = train_supernet(net, data, teacher="original", **options)  # net is trained now
    copy_ = resumed.engine.step_fn.teacher
    assert copy_ is not teacher and resumed.engine.step_index == run.engine.step_index > 0
    assert all(torch.equal(v, start[k]) for k, v in copy_.state_dict().items())  # from the file
    assert resumed.run().state == "finished", resumed.traceback
    plain = {**options, "checkpoint": tmp_path / "plain.pt"}
    torch.manual_seed(0)
    alone = ElasticMLP()  # the same run with the supernet's own largest as the only teacher
    train_supernet(alone, data, **plain).run()
    assert not torch.equal(alone.head.weight, net.head.weight)
    with pytest.raises(CheckpointError, match="teacher='original' in the checkpoint but True"):
        train_supernet(net, data, teacher=copy_, **options)


@pytest.mark.parametrize(
    ("options", "error", "needle"),
    [
        ({"seed": "x"}, ConfigError, r"seed must be an int >= 0, got 'x'"),
        ({"lr": "fast"}, ConfigError, r"lr must be a number, got 'fast'"),
        ({"device": "cuda:7"}, ConfigError, "not available on this machine; available: cpu"),
        ({"precision": "fp16"}, ConfigError, "fp16' needs a CUDA or MPS device"),
        ({"distill": 1.5}, ConfigError, r"distill must be in \[0, 1.0\]"),
        ({"n_random": -1}, ConfigError, "n_random must be an int >= 0"),
        ({"teacher": "big"}, ConfigError, "teacher must be a separate torch model .* or 'orig"),
        ({"labels": 10}, ConfigError, r"labels range over 0..10 but the model has 10 outputs"),
        ({"labels": 0.5}, ShapeError, "float targets are read as regression"),
    ],
)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_refusals_leave_the_net_as_it_was(digits_data, options, error, needle, mode):
    split = _small(digits_data, 64)
    X, y = split.X.flatten(1), split.y
    options = dict(options)  # (shared by the parametrized cases)
    if "labels" in options:
        shift = options.pop("labels")
        y = y.clone() + (shift if isinstance(shift, float) else 0)
        if not isinstance(shift, float):
            y[3] = shift
    torch.manual_seed(0)
    net = ElasticMLP().train(mode == "train")
    before = _fingerprint(net)
    with pytest.raises(error, match=needle):
        train_supernet(net, (X, y), epochs=1, **options)
    assert _same(_fingerprint(net), before)


def test_checkpoints_of_the_previous_format_still_resume(digits_data, uninterrupted, tmp_path):
    data = _small(digits_data)
    torch.manual_seed(0)
    net = ElasticMLP()
    path = tmp_path / "new.pt"
    run = train_supernet(net, data, epochs=2, batch_size=50, checkpoint=path, eval_every=5)
    run.subscribe(lambda e: e.kind == "loss" and e.data["step"] == 3 and run.stop(wait=False))
    run.start()
    assert run.wait(timeout=60).state == "stopped"
    blob = torch.load(path, weights_only=True)
    old_keys = ("epochs", "batch_size", "lr", "weight_decay", "n_random", "distill", "shrinking")
    old_keys += ("delay", "ramp", "aux_weight", "seed")
    settings = json.loads(blob["settings"])
    legacy = {  # what train_supernet wrote before the training loop existed
        "format": "nasviz.supernet-training/1",
        "supernet": blob["model"],
        "optimizer": blob["optimizer"],
        "step": blob["step"],
        "settings": json.dumps({k: settings[k] for k in old_keys}, sort_keys=True),
        "history": blob["history"],
    }
    old = tmp_path / "old.pt"
    torch.save(legacy, old)
    torch.manual_seed(5)
    other = ElasticMLP()
    resumed = train_supernet(other, data, epochs=2, batch_size=50, checkpoint=old, eval_every=5)
    assert resumed.status.done == 3 and resumed.run().state == "finished"
    got = other.state_dict()
    assert all(torch.allclose(got[k], uninterrupted[k], atol=1e-6) for k in uninterrupted)
