"""The stored form of a routing recording: plain numpy arrays per MoE layer, plus labels.

A :class:`Recording` is what :class:`~nasviz.moe.RoutingRecorder` produces and what
:class:`~nasviz.moe.RoutingStats` reads. It saves to a single ``.npz`` file (arrays, no pickle)
with its metadata as a JSON string inside, and loads back with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasviz.errors import CheckpointError, MoEError

__all__ = ["LayerRecord", "Recording"]

_FORMAT = "nasviz.moe.recording/2"
_READABLE = ("nasviz.moe.recording/1", _FORMAT)  # /1: no `dropped` arrays, no fingerprints
_ARRAYS = ("experts", "gates", "probs", "logits", "example", "position", "token")


@dataclass(frozen=True)
class LayerRecord:
    """Every routed token of one MoE layer (``n`` tokens, ``k`` choices, ``E`` experts).

    Attributes:
        name: the layer's module path in the model.
        num_experts: ``E``, the router's number of outputs.
        top_k: ``k``.
        experts: chosen experts, best first, (n, k) int64.
        gates: their gate weights, (n, k) float32 (0 for assignments dropped by capacity).
        probs: router probabilities, (n, E) float32.
        logits: router logits, (n, E) float32.
        example: index of the example (sequence) each token belongs to, (n,) int64.
        position: position of the token in its sequence, (n,) int64.
        token: input token id, or -1 where unknown, (n,) int64.
        dropped: bool (n, k): the assignment was dropped by a capacity limit (no expert
            processed it); None means nothing was dropped and is stored as all False.
        fingerprint: what identifies the layer the tokens went through (router shape and
            weight hash, experts); stats are only used on a model with the same fingerprints.
    """

    name: str
    num_experts: int
    top_k: int
    experts: np.ndarray
    gates: np.ndarray
    probs: np.ndarray
    logits: np.ndarray
    example: np.ndarray
    position: np.ndarray
    token: np.ndarray
    dropped: np.ndarray | None = None
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.dropped is None:
            object.__setattr__(self, "dropped", np.zeros(self.experts.shape, dtype=bool))

    def __len__(self) -> int:
        return len(self.example)


@dataclass(frozen=True)
class Recording:
    """Routing of every recorded MoE layer, and per-example labels.

    Attributes:
        layers: one :class:`LayerRecord` per MoE layer, in model order.
        num_examples: number of examples (sequences) recorded.
        labels: label name -> array of length ``num_examples`` (task, class, ...).
    """

    layers: tuple[LayerRecord, ...]
    num_examples: int
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, values in self.labels.items():
            if len(values) != self.num_examples:
                raise MoEError(
                    f"label {name!r} has {len(values)} entries but {self.num_examples} examples were "
                    "recorded; pass one label per example (sequence), in the order they went through the model"
                )

    @property
    def signature(self) -> tuple[tuple[str, int, str], ...]:
        """``(layer name, number of experts, fingerprint)`` per layer: what a model must match
        to use these stats."""
        return tuple((layer.name, layer.num_experts, layer.fingerprint) for layer in self.layers)

    @property
    def num_decisions(self) -> int:
        """Total number of (token, chosen expert) routing decisions over all layers."""
        return sum(layer.experts.size for layer in self.layers)

    def layer(self, layer: int | str) -> LayerRecord:
        """A layer by index or name."""
        if isinstance(layer, str):
            for record in self.layers:
                if record.name == layer:
                    return record
            raise MoEError(
                f"no MoE layer named {layer!r}; recorded layers: {[r.name for r in self.layers]}"
            )
        if not -len(self.layers) <= layer < len(self.layers):
            raise MoEError(
                f"layer index {layer} out of range; {len(self.layers)} MoE layers were recorded"
            )
        return self.layers[layer]

    def with_labels(self, **labels: Sequence | np.ndarray) -> Recording:
        """A copy with more (or replaced) per-example labels."""
        merged = dict(self.labels)
        merged.update({k: as_label_array(k, v) for k, v in labels.items()})
        return Recording(self.layers, self.num_examples, merged)

    # ---- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes a single ``.npz`` (numeric and string arrays, metadata as JSON; no pickle)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        meta = {
            "format": _FORMAT,
            "num_examples": self.num_examples,
            "layers": [
                {
                    "name": r.name,
                    "num_experts": r.num_experts,
                    "top_k": r.top_k,
                    "fingerprint": r.fingerprint,
                }
                for r in self.layers
            ],
            "labels": list(self.labels),
        }
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
        for i, record in enumerate(self.layers):
            for key in (*_ARRAYS, "dropped"):
                arrays[f"layer{i}.{key}"] = getattr(record, key)
        for j, values in enumerate(self.labels.values()):
            arrays[f"label{j}"] = values
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        """Reads a file written by :meth:`save` (``allow_pickle=False``)."""
        try:
            with np.load(Path(path), allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                if meta.get("format") not in _READABLE:
                    raise CheckpointError(
                        f"{path} is not a nasviz routing recording (format {meta.get('format')!r}; "
                        f"readable: {list(_READABLE)})"
                    )
                layers = tuple(
                    LayerRecord(
                        info["name"],
                        int(info["num_experts"]),
                        int(info["top_k"]),
                        **{key: npz[f"layer{i}.{key}"] for key in _ARRAYS},
                        dropped=npz.get(f"layer{i}.dropped"),
                        fingerprint=str(info.get("fingerprint", "")),
                    )
                    for i, info in enumerate(meta["layers"])
                )
                labels = {name: npz[f"label{j}"] for j, name in enumerate(meta["labels"])}
        except (KeyError, ValueError, OSError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"cannot read routing recording {path}: {exc}") from exc
        return cls(layers, int(meta["num_examples"]), labels)


def as_label_array(name: str, values: Sequence | np.ndarray) -> np.ndarray:
    """A 1-D numpy label array (tensors and lists accepted; objects become strings)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise MoEError(
            f"label {name!r} must be one-dimensional (one entry per example), got shape {array.shape}"
        )
    if array.dtype == object:
        array = array.astype(str)
    return array
