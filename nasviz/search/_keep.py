"""Kept models: the trained model of every front arch of a function search, on disk.

A search function may return the model it built and trained (``fn(arch) -> model`` or
``(model, {extra values})``); nasviz's objectives then measure it. With
``Search(fn, ..., keep_models=folder)`` each completed trial's model is written to
``folder/trial-<number>.pt`` (its state dict, atomically, read back with
``weights_only=True``), and whenever a run ends the files of trials no longer on the Pareto
front are removed. :meth:`~nasviz.search.Search.load_model` loads one into a model the caller
builds for that arch (a state dict holds no code, so nothing is unpickled).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasviz.errors import ConfigError

__all__ = ["KeptModels"]

_NAME = re.compile(r"^trial-(\d+)\.pt$")


class KeptModels:
    """The folder of kept models (see the module docstring).

    Contract: :meth:`save` is called by the search's run thread, :meth:`prune` when a run
    ends; several processes of one shared study may keep models in one folder (each file is
    one trial's, written atomically).
    """

    def __init__(self, folder: str | os.PathLike):
        if not isinstance(folder, str | os.PathLike):
            raise ConfigError(f"keep_models must be a folder path, got {type(folder).__name__}")
        self.folder = Path(folder)

    def path(self, number: int) -> Path:
        return self.folder / f"trial-{number}.pt"

    def save(self, number: int, model: nn.Module) -> Path:
        """Writes the model's state dict for trial ``number`` (a temporary file, then renamed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(number)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, partial)
        os.replace(partial, target)
        return target

    def kept(self) -> list[int]:
        """Trial numbers with a kept model, sorted."""
        if not self.folder.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def prune(self, front: Collection[int]) -> list[int]:
        """Removes the models of trials not in ``front``; returns the removed trial numbers."""
        gone = [n for n in self.kept() if n not in front]
        for number in gone:
            self.path(number).unlink(missing_ok=True)
        return gone

    def load(self, number: int, model: nn.Module) -> nn.Module:
        """Loads trial ``number``'s weights into ``model`` (built for its arch) and returns it."""
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"load_model needs a torch model built for the trial's arch, got {type(model).__name__}"
            )
        path = self.path(number)
        if not path.is_file():
            raise ConfigError(
                f"no kept model for trial {number} in {self.folder}; kept: {self.kept()} (only "
                "the front's models are kept once a run ends)"
            )
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model
