"""What a training checkpoint holds, and putting it back: everything a resume needs, checked
before anything is loaded so a checkpoint that does not fit leaves the run as it was."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from nasviz.errors import CheckpointError

if TYPE_CHECKING:
    from nasviz.training._loop import Trainer

__all__ = ["restore_trainer", "state_fits", "trainer_blob"]


def state_fits(module: nn.Module, state: Mapping[str, Any], where: str) -> None:
    """CheckpointError (before anything is loaded) unless ``state`` fits ``module`` exactly."""
    own = module.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or extra or wrong:
        raise CheckpointError(
            f"{where}: the weights do not fit this model (missing {missing[:5]}, unexpected "
            f"{extra[:5]}, other shapes {wrong[:5]})"
        )


def trainer_blob(trainer: Trainer) -> dict[str, Any]:
    """The checkpoint of a trainer: tensors, numbers, strings, lists and dicts only."""
    return {
        "format": trainer.formats[0],
        "model": trainer.model_blob(),
        "optimizer": trainer.optimizer.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else {},
        "modules": [m.state_dict() for m in trainer.step_fn.modules()],
        "step": trainer.step_index,
        "cursor": trainer.cursor.position,
        "settings": json.dumps(trainer.settings, sort_keys=True),
        "history": json.dumps(trainer.records()),
    }


def _check(trainer: Trainer, blob: dict[str, Any], path: Path) -> None:
    """CheckpointError unless ``blob`` is this kind of training with these settings."""
    if blob.get("format") not in trainer.formats:
        raise CheckpointError(
            f"{path} is not a checkpoint of this kind of training (format "
            f"{blob.get('format')!r}; expected {trainer.formats[0]!r})"
        )
    saved = json.loads(blob["settings"])
    diffs = [
        f"{k}={saved.get(k)!r} in the checkpoint but {v!r} now"
        for k, v in trainer.settings.items()
        if k in saved and saved[k] != v
    ]
    if diffs:
        raise CheckpointError(
            f"{path}: training settings differ, cannot resume: " + "; ".join(diffs)
        )
    groups = blob["optimizer"].get("param_groups", [])
    if [len(g["params"]) for g in groups] != [
        len(g["params"]) for g in trainer.optimizer.param_groups
    ]:
        raise CheckpointError(f"{path}: its optimizer state is for other parameters")
    modules, states = trainer.step_fn.modules(), blob.get("modules", [])
    if len(states) != len(modules):
        raise CheckpointError(
            f"{path}: it holds {len(states)} extra modules, this run has {len(modules)}"
        )
    for module, state in zip(modules, states, strict=True):
        state_fits(module, state, str(path))


def restore_trainer(trainer: Trainer, blob: dict[str, Any], path: Path) -> None:
    """Puts a checkpoint back into ``trainer`` (after :func:`_check` and the model's own check)."""
    _check(trainer, blob, path)
    trainer.restore_model(blob["model"], path)
    for module, state in zip(trainer.step_fn.modules(), blob.get("modules", []), strict=True):
        module.load_state_dict(state)
    trainer.optimizer.load_state_dict(blob["optimizer"])
    if trainer.scaler is not None and blob.get("scaler"):
        trainer.scaler.load_state_dict(blob["scaler"])
    trainer.step_index = int(blob["step"])
    if "cursor" in blob:
        trainer.cursor.seek(*blob["cursor"])
    else:  # a checkpoint from before cursors: whole updates of `accumulate` batches
        consumed = trainer.step_index * trainer.accumulate
        length = trainer.cursor.length
        trainer.cursor.seek(*(divmod(consumed, length) if length else (0, consumed)))
    history = json.loads(blob["history"])
    trainer.load_records(history["losses"], history["evals"])
