"""RoutingRecorder: a context manager that records every router decision of a model.

It finds nasviz :class:`~nasviz.moe.MoE` layers (also inside supernets, with their elastic
arguments) and Hugging Face transformers MoE routers, hooks them on ``__enter__`` and removes
every hook on ``__exit__``, also when the block raised. Hooks only read detached tensors, so
recording never changes the model's outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasviz.errors import MoEError
from nasviz.moe._hf import find_hf_routers
from nasviz.moe._layer import MoE, Routing
from nasviz.moe._recording import LayerRecord, Recording, as_label_array

__all__ = ["RoutingRecorder", "find_moe_layers"]


def find_moe_layers(model: nn.Module) -> list[tuple[str, nn.Module, Any]]:
    """``(name, module, hf_router_or_None)`` for every MoE layer of ``model``, in module order.

    nasviz layers come as ``(path, MoE, None)``; Hugging Face blocks as
    ``(block path, router, HFRouter)``.
    """
    found: list[tuple[str, nn.Module, Any]] = [
        (name or type(module).__name__, module, None)
        for name, module in model.named_modules()
        if isinstance(module, MoE)
    ]
    found += [(hf.name, hf.router, hf) for hf in find_hf_routers(model)]
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    return sorted(found, key=lambda item: order.get(item[0], -1))


class RoutingRecorder:
    """Records each token's chosen experts, gate weights and router probabilities.

    Args:
        model: a model holding nasviz MoE layers or Hugging Face MoE blocks.
        labels: optional per-example labels, name -> array with one entry per example
            (sequence) in the order examples go through the model while recording (for example
            ``{"task": split.extras["task"], "class": split.y}``). Positions are recorded
            automatically. A label of the wrong length raises :class:`~nasviz.errors.MoEError`
            when the recording ends.

    Use::

        with RoutingRecorder(model, labels={"task": test.extras["task"]}) as rec:
            model(test.X)
        stats = rec.stats()

    Thread contract: enter, exit and read the recorder from one thread. Forwards run while it
    is active are recorded in call order; the first input of the model decides how many
    examples a forward holds (dimension 0) and, when it is an integer (B, T) tensor, the token
    ids. Forwards that run concurrently in other threads are not supported. Recorded tensors
    stay where the model computed them (e.g. on the GPU) until the recording is read, when
    they are copied into numpy arrays.
    """

    def __init__(
        self, model: nn.Module, labels: Mapping[str, Sequence | np.ndarray] | None = None
    ) -> None:
        self.model = model
        self._layers = find_moe_layers(model)
        if not self._layers:
            raise MoEError(
                f"{type(model).__name__} has no MoE layers to record: expected nasviz.moe.MoE layers or Hugging "
                "Face sparse-MoE blocks (Mixtral, Qwen2/3-MoE, OLMoE, Switch Transformers)"
            )
        self._labels = {
            name: as_label_array(name, values) for name, values in (labels or {}).items()
        }
        self._handles: list[Any] = []
        self._chunks: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in self._layers]
        self._leads: dict[int, tuple[int, ...]] = {}
        self._offset = 0  # examples recorded by finished forwards of the model
        self._batch: int | None = None  # examples in the forward now running
        self._tokens: torch.Tensor | None = None  # (B, T) ids of the forward now running
        self._recording: Recording | None = None

    @property
    def layer_names(self) -> list[str]:
        """Names of the MoE layers this recorder hooks."""
        return [name for name, _, _ in self._layers]

    # ---- hooks ----------------------------------------------------------------------------
    def __enter__(self) -> RoutingRecorder:
        if self._handles:
            raise MoEError(
                "this RoutingRecorder is already recording; use one `with` block at a time"
            )
        self._recording = None
        try:
            self._handles.append(
                self.model.register_forward_pre_hook(self._on_model_start, with_kwargs=True)
            )
            self._handles.append(self.model.register_forward_hook(self._on_model_end))
            for i, (_, module, hf) in enumerate(self._layers):
                if hf is None:
                    self._handles.append(
                        module.register_routing_hook(
                            lambda mod, routing, i=i: self._add(i, routing)
                        )
                    )
                else:
                    self._handles.append(
                        hf.block.register_forward_pre_hook(
                            lambda mod, args, kwargs, i=i: self._on_block_start(i, args, kwargs),
                            with_kwargs=True,
                        )
                    )
                    self._handles.append(
                        module.register_forward_hook(
                            lambda mod, args, out, i=i, hf=hf: self._add(
                                i, hf.routing(out, self._leads.get(i))
                            )
                        )
                    )
        except BaseException:
            self._remove_hooks()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._remove_hooks()
        self._batch, self._tokens = None, None
        if exc_type is None:
            self.recording()  # checks label lengths now, where the user wrote the `with`

    def _remove_hooks(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def _on_model_start(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        first = kwargs.get("input_ids")
        if first is None:
            first = next(
                (a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None
            )
        if first is None or first.dim() == 0:
            self._batch, self._tokens = None, None
            return
        self._batch = int(first.shape[0])
        integer = not first.is_floating_point() and not first.is_complex()
        self._tokens = first.detach() if integer and first.dim() == 2 else None

    def _on_model_end(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._batch is not None:
            self._offset += self._batch
        self._batch, self._tokens = None, None

    def _on_block_start(self, i: int, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs.get("hidden_states")
        if isinstance(hidden, torch.Tensor):
            self._leads[i] = tuple(hidden.shape[:-1])

    def _add(self, i: int, routing: Routing) -> None:
        n = routing.experts.shape[0]
        lead = routing.shape
        if len(lead) == 1 and self._tokens is not None and self._tokens.numel() == n:
            lead = tuple(self._tokens.shape)
        batch, length = (lead[0], math.prod(lead[1:])) if len(lead) >= 2 else (n, 1)
        offset = self._offset
        if self._batch is None:  # a layer called outside the model's forward: one batch per call
            self._offset += batch
        same = self._tokens is not None and tuple(self._tokens.shape) == (batch, length)
        # example/position/token arrays are built when the recording is read: the hook stays cheap
        self._chunks[i].append(
            (
                routing.experts,
                routing.gates,
                routing.probs,
                routing.logits,
                (offset, batch, length),
                self._tokens if same else None,
            )
        )

    # ---- results ----------------------------------------------------------------------------
    def recording(self) -> Recording:
        """Everything recorded so far as a :class:`Recording` (numpy arrays)."""
        if self._recording is not None:
            return self._recording
        layers = []
        for (name, module, hf), chunks in zip(self._layers, self._chunks, strict=True):
            num_experts = hf.num_experts if hf is not None else module.num_experts
            top_k = hf.top_k if hf is not None else module.top_k
            layers.append(_concat(name, num_experts, top_k, chunks))
        recording = Recording(tuple(layers), self._offset, dict(self._labels))
        if not self._handles:  # finished: cache
            self._recording = recording
        return recording

    def stats(self, labels: Mapping[str, Sequence | np.ndarray] | None = None) -> Any:
        """A :class:`~nasviz.moe.RoutingStats` of the recording (``labels`` added or replaced)."""
        from nasviz.moe._stats import RoutingStats

        recording = self.recording()
        if labels:
            recording = recording.with_labels(**labels)
        return RoutingStats(recording)


def _concat(
    name: str, num_experts: int, top_k: int, chunks: list[tuple[torch.Tensor, ...]]
) -> LayerRecord:
    if not chunks:
        empty = np.zeros(0, dtype=np.int64)
        return LayerRecord(
            name,
            num_experts,
            top_k,
            np.zeros((0, top_k), np.int64),
            np.zeros((0, top_k), np.float32),
            np.zeros((0, num_experts), np.float32),
            np.zeros((0, num_experts), np.float32),
            empty,
            empty,
            empty,
        )
    k = max(c[0].shape[1] for c in chunks)

    def pad(
        t: torch.Tensor, width: int, value: float
    ) -> torch.Tensor:  # elastic calls: fewer experts / smaller k
        return (
            torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)
            if t.shape[1] < width
            else t
        )

    experts = torch.cat([pad(c[0].cpu(), k, -1) for c in chunks]).numpy().astype(np.int64)
    gates = torch.cat([pad(c[1].cpu().float(), k, 0.0) for c in chunks]).numpy()
    probs = torch.cat(
        [
            pad(
                torch.softmax(c[3].cpu().float(), dim=-1) if c[2] is None else c[2].cpu().float(),
                num_experts,
                0.0,
            )
            for c in chunks
        ]
    ).numpy()
    logits = torch.cat([pad(c[3].cpu().float(), num_experts, float("nan")) for c in chunks]).numpy()
    example = np.concatenate([np.repeat(o + np.arange(b), n) for o, b, n in (c[4] for c in chunks)])
    position = np.concatenate([np.tile(np.arange(n), b) for _, b, n in (c[4] for c in chunks)])
    token = np.concatenate(
        [
            np.full(b * n, -1, np.int64) if c[5] is None else c[5].reshape(-1).cpu().numpy()
            for c, (_, b, n) in ((c, c[4]) for c in chunks)
        ]
    ).astype(np.int64)
    rest = [example, position, token]
    return LayerRecord(
        name, num_experts, k, experts, gates, probs, logits, *rest
    )  # k: widest top-k recorded
