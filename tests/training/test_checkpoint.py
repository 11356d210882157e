"""Checkpoints survive kills and truncation: atomic writes, the previous one kept, fallback with
a warning, and never advice to load with weights_only=False."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import time
import warnings

import pytest
import torch
from training_helpers import blobs, mlp

from nasviz.errors import CheckpointError, NasvizWarning
from nasviz.training import load_checkpoint, previous_path, save_checkpoint, train


def _blob(step: int) -> dict:
    """A checkpoint whose every value says which step wrote it (a mix would show)."""
    return {"step": step, "weights": torch.full((256, 1024), float(step)), "name": f"s{step}"}


def _consistent(blob: dict) -> int:
    step = blob["step"]
    assert blob["name"] == f"s{step}" and bool((blob["weights"] == step).all())
    return step


def _writer(path: str, writing) -> None:  # runs in the child: write checkpoints until killed
    step = 1
    while True:
        save_checkpoint(_blob(step), path)
        writing.set()  # from now on it is always in the middle of a save or just between two
        step += 1


def test_kills_at_any_moment_leave_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(_blob(0), path)
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(0)
    mid_write = 0
    for _ in range(20):
        writing = ctx.Event()
        child = ctx.Process(target=_writer, args=(str(path), writing))
        child.start()
        assert writing.wait(timeout=60)
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        mid_write += (tmp_path / ".ckpt.pt.partial").exists()
        if path.exists():  # the newest checkpoint is never torn: it loads without a fallback
            with warnings.catch_warnings():
                warnings.simplefilter("error", NasvizWarning)
                blob, source = load_checkpoint(path)
            assert source == path
        else:  # killed between the two renames: the previous one is complete
            with pytest.warns(NasvizWarning, match="does not exist"):
                blob, source = load_checkpoint(path)
        _consistent(blob)  # every value from one and the same save
    assert mid_write >= 1  # some kills did land in the middle of a write


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(_blob(1), path)
    save_checkpoint(_blob(2), path)
    assert _consistent(torch.load(previous_path(path), weights_only=True)) == 1
    whole = path.read_bytes()
    good = tmp_path / "good.pt"
    shutil.copy(path, good)
    offsets = sorted(
        {0, 1, 2, 30, 100, 1000, len(whole) // 2, len(whole) - 100, len(whole) - 1}
        | {random.Random(1).randrange(len(whole)) for _ in range(20)}
    )
    for offset in offsets:
        path.write_bytes(whole[:offset])
        with pytest.warns(
            NasvizWarning, match=r"truncated or corrupt .* resuming from the previous"
        ):
            blob, source = load_checkpoint(path)
        assert _consistent(blob) == 1 and source == previous_path(path), offset
    path.unlink()  # a kill between the two renames of a save leaves only the previous one
    with pytest.warns(NasvizWarning, match="does not exist"):
        assert _consistent(load_checkpoint(path)[0]) == 1


def test_unreadable_checkpoints_never_advise_weights_only_false(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"junk that is not a checkpoint")
    previous_path(path).write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "no readable checkpoint" in text and "truncated or corrupt" in text
    assert "weights_only" not in text and info.value.__cause__ is None

    class Evil:  # a pickled object: weights_only refuses it, and so must we, quietly
        def __reduce__(self):
            return (print, ("ran code from a checkpoint",))

    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "weights_only" not in str(info.value) and "False" not in str(info.value)


def test_training_checkpoints_every_epoch_and_on_stop(tmp_path):
    path = tmp_path / "run.pt"
    X, y = blobs(64)
    run = train(mlp(), (X, y), epochs=3, batch_size=16, checkpoint=path)
    written = []
    run.subscribe(lambda e: e.kind == "checkpoint" and written.append(e.data["step"]))
    run.subscribe(lambda e: e.kind == "loss" and e.data["step"] == 6 and run.stop(wait=False))
    run.start()
    assert run.wait(timeout=60).state == "stopped"
    assert written == [4]  # the end of epoch 1; the stop at step 6 writes too
    blob = torch.load(path, weights_only=True)
    assert blob["step"] == 6 and blob["cursor"] == [1, 2]
    assert torch.load(previous_path(path), weights_only=True)["step"] == 4
