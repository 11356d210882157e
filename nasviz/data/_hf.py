"""Hugging Face ``datasets`` as batch sources: dicts of their numeric columns.

A ``datasets.Dataset`` is indexed one batch at a time (``dataset[indices]`` in torch format),
never converted whole; a ``datasets.IterableDataset`` is streamed. Text, image and audio columns
are left out (tokenize first); the label column (``label``, or the one ``target`` names)
becomes ``labels``, as Hugging Face's own collator does. ``datasets`` is an optional extra:
nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from nasviz.data._batch import LABELS
from nasviz.data._sources import MemorySource, StreamSource
from nasviz.errors import ConfigError, ShapeError

__all__ = ["hf_dataset", "hf_iterable", "is_hf", "rename_target"]


def is_hf(data: Any, name: str) -> bool:
    """Whether ``data`` is a ``datasets`` object of class ``name`` (without importing it)."""
    return type(data).__name__ == name and type(data).__module__.startswith("datasets")


def rename_target(columns: Mapping[str, Any], target: str | None, what: str) -> dict[str, Any]:
    """Dict columns with the target as ``labels`` (HF's ``label`` too, as its collator does)."""
    columns = dict(columns)
    if target is None:
        target = "label" if "label" in columns and LABELS not in columns else None
    elif target not in columns:
        raise ConfigError(f"{what}: target {target!r} is not one of its columns {list(columns)}")
    if target is not None and target != LABELS:
        columns[LABELS] = columns.pop(target)
    return columns


def _numeric(feature: Any) -> bool:
    """Whether a Hugging Face feature holds numbers (possibly in nested lists)."""
    kind = type(feature).__name__
    if kind == "ClassLabel":
        return True
    inner = getattr(feature, "feature", None)
    if inner is not None:  # List / Sequence / LargeList
        return _numeric(inner)
    dtype = str(getattr(feature, "dtype", ""))
    return dtype.startswith(("int", "uint", "float", "bool"))


def hf_dataset(data: Any, batch_size: int, drop_last: bool, target: str | None, what: str):
    """A Hugging Face ``datasets.Dataset``: dicts of its numeric columns, one index per batch."""
    numeric = [name for name, feature in data.features.items() if _numeric(feature)]
    if not numeric:
        raise ConfigError(f"{what}: the dataset has no numeric columns ({data.column_names})")
    names = rename_target({n: n for n in numeric}, target, what)  # batch key -> column
    table = data.with_format("torch", columns=numeric)

    def gather(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = table[idx.tolist()]
        batch = {}
        for key, column in names.items():
            value = rows[column]
            if not isinstance(value, torch.Tensor):
                raise ShapeError(
                    f"{what}: column {column!r} has rows of different lengths; pad them "
                    "(e.g. the tokenizer's padding='max_length') or pass a DataLoader with a "
                    "collate function that pads"
                )
            batch[key] = value
        return batch

    targets = None  # one label per example: small enough to check up front
    if LABELS in names and type(data.features[names[LABELS]]).__name__ in ("Value", "ClassLabel"):
        targets = torch.as_tensor(data.with_format("numpy")[names[LABELS]])
    return MemorySource(None, batch_size, drop_last, gather=gather, n=len(data), targets=targets)


def hf_iterable(data: Any, batch_size: int, target: str | None) -> StreamSource:
    def batched(stream: Any, pin_memory: bool):
        for rows in stream.with_format("torch").iter(batch_size=batch_size):
            numeric = {k: v for k, v in rows.items() if isinstance(v, torch.Tensor)}
            yield rename_target(numeric, target, "data")

    return StreamSource(data, batch_size, batched)
