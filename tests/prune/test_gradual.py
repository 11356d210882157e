"""Gradual magnitude pruning: the cubic schedule, monotone masks, inside a training loop."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from prune_helpers import mlp, snapshot, unchanged

from nasviz.errors import ConfigError, MaskError
from nasviz.prune import applied, gradual, remove, zhu_gupta_sparsity
from nasviz.runner import Event
from nasviz.supernet import ElasticMLP, train_supernet


def test_schedule_is_the_zhu_gupta_cubic():
    s = [
        zhu_gupta_sparsity(t, 0.8, n_steps=4, every=10, start=5, initial=0.1)
        for t in (0, 5, 15, 25, 35, 45, 99)
    ]
    expected = [0.1, 0.1] + [0.8 + (0.1 - 0.8) * (1 - k / 4) ** 3 for k in (1, 2, 3, 4)] + [0.8]
    assert s == pytest.approx(expected)
    assert zhu_gupta_sparsity(14, 0.8, 4, 10, 5, 0.1) == pytest.approx(
        s[1]
    )  # held between pruning steps


@given(st.floats(0, 0.99), st.integers(1, 20), st.integers(1, 5))
def test_schedule_is_monotone_and_ends_at_final(final, n, every):
    values = [zhu_gupta_sparsity(t, final, n, every) for t in range(n * every + 3)]
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))
    assert values[-1] == pytest.approx(final)


def test_pruning_during_a_training_loop_reaches_final_and_masks_only_grow():
    torch.manual_seed(0)
    model = mlp((16, 32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cb = gradual(model, 0.75, n_steps=5, every=3, start=2)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    previous = None
    for step in range(25):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        new = cb(step)
        if new is not None:
            if previous is not None:
                assert all(not (new[n] & ~previous[n]).any() for n in new)  # nothing revived
            previous = new
        if cb.masks is not None:
            assert all(model[int(n[0])].weight[~m].eq(0).all() for n, m in cb.masks.items())
    assert cb.done and list(cb.history["step"]) == [2, 5, 8, 11, 14, 17]
    assert cb.masks.sparsity == pytest.approx(0.75, abs=1e-3)
    cb.finish()
    assert not hasattr(model[0], "parametrizations")
    assert float((model[0].weight == 0).float().mean()) > 0.3


def test_accepts_events_and_ignores_those_without_a_step():
    cb = gradual(mlp(), 0.5, n_steps=2, every=2, start=3)
    assert cb(Event("loss", {"step": 2})) is None
    for other in (Event("status", None), Event("error", {"error": "x"}), Event("eval", {})):
        assert cb(other) is None  # no step: the schedule does not move (step 3 would prune)
    assert cb.masks is None and cb._step == 2
    assert cb(Event("loss", {"step": 3})) is not None
    assert cb(Event("eval", {"step": 3})) is None  # same step twice: pruned once
    assert cb(Event("loss", {"step": 7})).sparsity == pytest.approx(0.5, abs=1e-3)
    assert list(cb.history["step"]) == [3, 7]
    remove(cb.model)


def test_follows_the_steps_of_a_nasviz_training_run():
    torch.manual_seed(0)
    net = ElasticMLP(16, 4, widths=(8, 16), depths=(1, 2))
    X, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    run = train_supernet(net, (X, y), epochs=3, batch_size=16, n_random=0, seed=0)  # 12 steps
    cb = gradual(net, 0.5, n_steps=3, every=3, start=3)
    kinds = []
    run.subscribe(lambda e: kinds.append(e.kind))
    run.subscribe(cb)
    assert run.run().state == "finished"
    assert "status" in kinds and kinds.count("loss") == 12
    assert list(cb.history["step"]) == [3, 6, 9, 12]  # on the run's own step numbers
    expected = [zhu_gupta_sparsity(t, 0.5, 3, 3, 3) for t in (3, 6, 9, 12)]
    assert list(cb.history["target"]) == pytest.approx(expected)
    assert cb.done and cb.masks.sparsity == pytest.approx(0.5, abs=1e-3)
    for name, mask in cb.masks.items():  # the supernet trained with its weights masked
        module = net.get_submodule(name.rpartition(".")[0])
        assert (module.weight[~mask] == 0).all()
    with torch.no_grad(), net.subnet(net.space.largest()):
        assert net(X).shape == (64, 4)
    cb.finish()
    assert applied(net) is None


def test_bad_arguments_change_nothing():
    model = mlp()
    before = snapshot(model)
    with pytest.raises(MaskError):
        gradual(model, 1.2, n_steps=3)
    with pytest.raises(ConfigError, match="n_steps"):
        gradual(model, 0.5, n_steps=0)
    with pytest.raises(ConfigError, match="initial_sparsity 0.6 must not exceed sparsity 0.5"):
        gradual(model, 0.5, n_steps=3, initial_sparsity=0.6)
    assert unchanged(model, before)
    with pytest.warns(FutureWarning, match="gradual: final_sparsity= is now sparsity="):
        old = gradual(model, final_sparsity=0.5, n_steps=2)
    assert old.schedule(old.end) == gradual(model, sparsity=0.5, n_steps=2).schedule(old.end)
