"""Training: sandwich members, events, background control and exact resumption."""

from __future__ import annotations

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
