"""The training loop: data forms give the same run, exact resume, precision, accumulation,
clipping, schedules, NaN losses, events."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset
from training_helpers import blobs, mlp, same_weights, weights

from nasviz.data import as_batches
from nasviz.errors import TrainingError
from nasviz.training import lr_factor, train


def _trained(data, steps=None, epochs=None, seed=0, model_seed=0, **options):
    model = mlp(dropout=0.2, seed=model_seed)
    run = train(model, data, steps=steps, epochs=epochs, seed=seed, lr=1e-2, **options)
    status = run.run()
    assert status.state == "finished", run.traceback
    return model, run


def test_dataloader_and_tensors_give_identical_weights():
    X, y = blobs(100)
    by_tensors, _ = _trained((X, y), epochs=2, batch_size=16, seed=5)
    for workers in (0, 2):
        loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True, num_workers=workers)
        by_loader, _ = _trained(loader, epochs=2, seed=5)
        assert same_weights(weights(by_loader), weights(by_tensors)), workers
    other_seed, _ = _trained((X, y), epochs=2, batch_size=16, seed=6)
    assert not same_weights(weights(other_seed), weights(by_tensors))


def test_a_stream_is_never_indexed_nor_held_whole():
    class Stream(IterableDataset):
        """Yields examples one by one and counts them; indexing it would be a bug."""

        def __init__(self):
            self.produced = 0

        def __iter__(self):
            X, y = blobs(1_000)
            for i in range(len(y)):
                self.produced += 1
                yield X[i], y[i]

        def __getitem__(self, i):
            raise AssertionError("a stream was indexed")

    stream = Stream()
    seen = []

    class Watch(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = mlp()

        def forward(self, x):
            seen.append(stream.produced)  # examples read so far when a batch arrives
            return self.inner(x)

    model = Watch()
    run = train(model, stream, steps=6, batch_size=10, lr=1e-2)
    assert run.run().state == "finished", run.traceback
    assert run.engine.batches.length is None
    # the check before the run reads one batch; then each step reads one more batch, no more
    assert max(seen) <= 10 * (6 + 2) and stream.produced < 1_000


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    X, y = blobs(90)  # 90 / 16: six batches per epoch, the last one short
    options = {"steps": 14, "batch_size": 16, "accumulate": 2, "checkpoint_every": 5}
    reference, ref_run = _trained((X, y), **options)
    for stop_at in (3, 5, 8):  # mid-epoch (3 updates = 6 of 6 batches, 5 = 10 batches, ...)
        path = tmp_path / f"run{stop_at}.pt"
        model = mlp(dropout=0.2)
        run = train(model, (X, y), seed=0, lr=1e-2, checkpoint=path, **options)
        run.subscribe(
            lambda e, r=run, k=stop_at: (
                e.kind == "loss" and e.data["step"] == k and r.stop(wait=False)
            )
        )
        run.start()
        status = run.wait(timeout=120)
        assert status.state == "stopped" and status.done == stop_at, run.traceback
        resumed_model = mlp(dropout=0.2, seed=99)  # other initial weights: all come from the file
        resumed = train(resumed_model, (X, y), seed=0, lr=1e-2, checkpoint=path, **options)
        assert resumed.status.done == stop_at
        assert resumed.run().state == "finished", resumed.traceback
        assert same_weights(weights(resumed_model), weights(reference)), stop_at
        assert resumed.history["loss"].tolist() == ref_run.history["loss"].tolist()


def test_bf16_autocast_trains_on_the_cpu():
    X, y = blobs(96)
    dtypes = []
    model = mlp()
    model[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    run = train(model, (X, y), epochs=4, batch_size=32, lr=2e-2, precision="bf16")
    assert run.run().state == "finished", run.traceback
    assert set(dtypes) == {torch.bfloat16}  # the forward passes really ran in bf16
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32
    history = run.history
    assert history["loss"].iloc[-3:].mean() < 0.5 * history["loss"].iloc[:3].mean()


def test_accumulation_equals_one_big_batch():
    X, y = blobs(64)
    model_a, model_b = mlp(), mlp()
    train(model_a, (X, y), steps=4, batch_size=32, shuffle=False, lr=1e-2, warmup=0.0).run()
    train(
        model_b, (X, y), steps=4, batch_size=16, accumulate=2, shuffle=False, lr=1e-2, warmup=0.0
    ).run()
    assert same_weights(weights(model_a), weights(model_b), atol=1e-5)
    assert not same_weights(weights(model_a), weights(mlp()), atol=1e-3)  # it did train


def test_clipping_bounds_the_gradient_norm():
    X, y = blobs(64)
    norms = []

    def sgd(params, lr):
        class Recording(torch.optim.SGD):
            def step(self, closure=None):
                grads = [
                    p.grad for g in self.param_groups for p in g["params"] if p.grad is not None
                ]
                norms.append(
                    float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
                )
                return super().step(closure)

        return Recording(params, lr=lr)

    train(mlp(), (X * 50, y), steps=5, batch_size=32, optimizer=sgd, clip=0.25).run()
    assert len(norms) == 5 and max(norms) <= 0.25 + 1e-5
    norms.clear()
    train(mlp(), (X * 50, y), steps=5, batch_size=32, optimizer=sgd).run()
    assert max(norms) > 1.0  # without clipping these gradients are large


def test_schedules_warm_up_then_decay():
    assert [round(lr_factor("cosine", s, 10, 0.2), 4) for s in (0, 1, 2, 6, 9)] == [
        0.5,
        1.0,
        1.0,
        0.5,
        round(0.5 * (1 + math.cos(math.pi * 7 / 8)), 4),
    ]
    assert lr_factor("linear", 5, 10, 0.0) == 0.5 and lr_factor("constant", 9, 10, 0.5) == 1.0
    run = train(mlp(), blobs(64), steps=8, batch_size=16, lr=0.1, schedule="linear", warmup=0.25)
    run.run()
    lrs = run.history.groupby("step")["lr"].first().tolist()
    assert lrs[:2] == [0.05, 0.1] and lrs[-1] == pytest.approx(0.1 * (1 - 5 / 6))


def test_a_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    X, y = blobs(64)
    X_bad = X.clone()
    X_bad[40] = float("nan")  # batch 3 of 4 (in order) carries a NaN
    path = tmp_path / "nan.pt"
    model = mlp()
    run = train(
        model,
        (X_bad, y),
        epochs=2,
        batch_size=16,
        shuffle=False,
        checkpoint=path,
        checkpoint_every=1,
    )
    events = []
    run.subscribe(events.append)
    status = run.run()
    assert status.state == "failed" and isinstance(run.error, TrainingError)
    assert "non-finite loss (loss=nan) at step 3" in str(run.error) and "nan" in status.message
    assert [e for e in events if e.kind == "error"]
    assert torch.isfinite(torch.cat([p.flatten() for p in model.parameters()])).all()
    good = torch.load(path, weights_only=True)
    assert good["step"] == 2  # the failing step wrote nothing
    again = train(
        mlp(seed=3),
        (X, y),
        epochs=2,
        batch_size=16,
        shuffle=False,
        checkpoint=path,
        checkpoint_every=1,
    )
    assert again.status.done == 2  # and it resumes


def test_events_history_and_validation():
    X, y = blobs(96)
    run = train(mlp(), (X[:64], y[:64]), epochs=2, batch_size=32, lr=2e-2, val=(X[64:], y[64:]))
    events = []
    run.subscribe(events.append)
    assert run.run().state == "finished"
    kinds = [e.kind for e in events if e.kind != "status"]
    assert kinds == ["loss", "loss", "eval", "loss", "loss", "eval"]
    assert [e.data["epoch"] for e in events if e.kind == "loss"] == [0, 0, 1, 1]
    assert list(run.evaluations.columns) == ["epoch", "step", "val_accuracy"]
    assert run.evaluations["epoch"].tolist() == [1, 2]
    assert set(run.history.columns) == {"step", "epoch", "member", "loss", "lr"}


def test_regression_trains_with_mse():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(128, 4, generator=g)
    y = X @ torch.tensor([1.5, -2.0, 0.5, 1.0]) + 0.3  # float targets: regression
    model = nn.Linear(4, 1)
    run = train(model, (X, y), epochs=30, batch_size=32, lr=5e-2)
    assert run.run().state == "finished", run.traceback
    assert run.engine.task == "regression"
    with torch.no_grad():
        mse = float(((model(X).squeeze(1) - y) ** 2).mean())
    assert mse < 0.01 and run.history["loss"].iloc[0] > 1.0


def test_a_custom_loss_and_batch_fn():
    X, y = blobs(64)
    batches = [{"features": X[i : i + 16], "target": y[i : i + 16]} for i in range(0, 64, 16)]
    seen = []

    def batch_fn(model, batch):
        return model(batch["features"]), batch["target"]

    def loss_fn(outputs, batch):
        seen.append(len(batch["target"]))
        return nn.functional.cross_entropy(outputs, batch["target"])

    run = train(mlp(), batches, epochs=2, batch_fn=batch_fn, loss_fn=loss_fn, lr=1e-2)
    assert run.run().state == "finished", run.traceback
    assert seen[1:] == [16] * 8  # (the first call is the check before the run)
    assert as_batches(batches).length == 4
