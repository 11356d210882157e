"""Bad input is refused before the run starts, in the caller's thread, with nasviz's own errors
that say what was wrong and what is allowed; the model is left exactly as it was."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset
from training_helpers import blobs, fingerprint, mlp

from nasviz.data import as_batches
from nasviz.errors import ConfigError, ShapeError
from nasviz.training import available_devices, train

X, Y = blobs(64)


class _Empty(IterableDataset):
    def __iter__(self):
        return iter(())


BAD = [
    (
        (X, Y + 1),
        {},
        ConfigError,
        r"labels range over 1..3 but the model has 3 outputs, so labels must lie in 0..2",
    ),
    (
        (X, Y.float() + 0.5),
        {},
        ShapeError,
        r"float targets are read as regression .* integer class labels",
    ),
    (
        (X, Y.float()),
        {"task": "classification"},
        ConfigError,
        "classification needs integer class labels",
    ),
    ((X, Y), {"seed": "x"}, ConfigError, r"seed must be an int >= 0, got 'x'"),
    ((X, Y), {"lr": "fast"}, ConfigError, r"lr must be a number, got 'fast'"),
    ((X, Y), {"lr": -1e-3}, ConfigError, "lr must be a number > 0"),
    ((X[:, :5], Y), {}, ShapeError, r"forward pass on an input of shape \(64, 5\) failed"),
    (
        [{"pixels": X, "labels": Y}],
        {},
        ShapeError,
        r"inputs \{'pixels': tensor \(64, 8\) float32\}",
    ),
    (
        (X, Y),
        {"device": "cuda:3"},
        ConfigError,
        f"not available on this machine; available: {', '.join(available_devices())}",
    ),
    ((X, Y), {"device": "tpu"}, ConfigError, "device must be None, 'auto', 'cpu'"),
    (
        (X, Y),
        {"precision": "fp16"},
        ConfigError,
        r"fp16' needs a CUDA or MPS device.*use precision='bf16'",
    ),
    (
        (X, Y),
        {"precision": "fp8"},
        ConfigError,
        r"precision must be one of \('fp32', 'bf16', 'fp16'\)",
    ),
    (DataLoader(TensorDataset(X[:0], Y[:0]), batch_size=8), {}, ConfigError, "yields no batches"),
    (_Empty(), {"steps": 3}, ConfigError, "yields no batches"),
    (_Empty(), {}, ConfigError, "a stream of unknown length: give steps="),
    (iter([(X, Y)]), {}, ConfigError, "one-shot iterator"),
    ((X, Y), {"steps": 2, "epochs": 2}, ConfigError, "give steps or epochs, not both"),
    ((X, Y), {"accumulate": 0}, ConfigError, "accumulate must be an int >= 1"),
    ((X, Y), {"clip": 0}, ConfigError, "clip .* must be a number > 0"),
    ((X, Y), {"warmup": 1.5}, ConfigError, r"warmup must be a fraction in \[0, 1\)"),
    ((X, Y), {"schedule": "step"}, ConfigError, "schedule must be one of"),
    ((X, Y), {"optimizer": "lbfgs"}, ConfigError, "optimizer must be one of"),
    ((X, Y), {"task": "ranking"}, ConfigError, "task must be None or one of"),
    (
        (X, Y),
        {"loss_fn": lambda out, batch: (out - 1).abs()},
        ConfigError,
        r"loss must be a scalar tensor, got \(64, 3\)",
    ),
    ((X, Y), {"shuffle": "yes"}, ConfigError, "shuffle must be True, False or None"),
    (
        pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}),
        {},
        ConfigError,
        r"target must name the label column .* \['a', 'y'\]",
    ),
    ("not data", {}, ConfigError, "training data must be a nasviz Dataset or Split"),
    ((X, Y), {"step": 5}, ConfigError, r"step must be a nasviz.training.Step .*steps=\?"),
    (
        (X, Y),
        {"epoch": 2},
        ConfigError,
        r"train has no option 'epoch' \(did you mean 'epochs'\?\); its options are accumulate,",
    ),
    ((X, Y), {"settings": {}}, ConfigError, "train has no option 'settings'"),
]


@pytest.mark.parametrize(("data", "options", "error", "needle"), BAD)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_bad_input_is_refused_before_anything_changes(data, options, error, needle, mode):
    model = mlp().train(mode == "train")
    before = fingerprint(model)
    with pytest.raises(error, match=needle):
        train(model, data, **options)
    assert fingerprint(model) == before  # weights, device and every module's mode


def test_labels_of_a_stream_are_checked_batch_by_batch():
    class Labels(IterableDataset):
        def __iter__(self):
            for i in range(64):
                yield X[i], (Y[i] if i < 40 else torch.tensor(7))  # batch 3 goes wrong

    model = mlp()
    run = train(model, Labels(), steps=4, batch_size=16)
    assert run.run().state == "failed"
    assert isinstance(run.error, ConfigError) and "labels range over 0..7" in str(run.error)
    assert run.status.done == 2  # the bad batch changed nothing


def test_dataframes_need_their_target_column():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.1, 0.2], "y": [0, 1, 0]})
    with pytest.raises(
        ConfigError,
        match=r"target 'label' is not a column of the DataFrame; its columns are \['a', 'b', 'y'\]",
    ):
        as_batches(frame, target="label")
    batches = as_batches(frame, target="y", batch_size=2)
    x, y = next(iter(batches))
    assert x.dtype == torch.float32 and x.shape == (2, 2) and y.tolist() == [0, 1]


def test_shuffling_a_stream_is_refused():
    class Stream(IterableDataset):
        def __iter__(self):
            yield from zip(X, Y, strict=True)

    with pytest.raises(ConfigError, match="cannot shuffle; shuffle it at the source"):
        train(mlp(), Stream(), steps=2, shuffle=True)
