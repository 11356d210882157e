"""RoutingRecorder: a context manager that records every router decision of a model.

It finds nasviz :class:`~nasviz.moe.MoE` layers (also inside supernets, with their elastic
arguments) and Hugging Face transformers MoE routers, hooks them on ``__enter__`` and removes
every hook on ``__exit__``, also when the block raised. Hooks only read detached tensors, so
recording never changes the model's outputs.

What one model forward means is read from its arguments by a pre-hook on the model: the batch
and the token ids (``input_ids`` or the first tensor argument), the padding to leave out
(``attention_mask``), and whether the forward continues the previous one from a key/value cache
(``past_key_values``, as in ``generate()``'s decode steps).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from nasviz.errors import MoEError
from nasviz.moe._hf import HFRouter, find_hf_routers
from nasviz.moe._layer import MoE, Routing
from nasviz.moe._recording import LayerRecord, Recording, as_label_array

__all__ = ["RoutingRecorder", "find_moe_layers", "layer_fingerprint"]


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


def layer_fingerprint(module: nn.Module, hf: HFRouter | None = None) -> str:
    """What identifies an MoE layer's routing: its sizes, its experts (nasviz: how many modules
    and the router-slot -> module map that merging sets) and a hash of the router weights.

    Two layers with the same fingerprint route identically; a pruned, merged, retrained or
    simply different layer gets another one.
    """
    if hf is not None:
        weight = hf.weight
        head = f"hf-{hf.kind} E={hf.num_experts} k={hf.top_k}"
    else:
        weight = module.router.weight
        mapping = (
            "-" if module.expert_map is None else ",".join(map(str, module.expert_map.tolist()))
        )
        head = (
            f"moe E={module.num_experts} modules={len(module.experts)} "
            f"hidden={module.hidden} map={mapping}"
        )
    data = weight.detach().float().cpu().contiguous().numpy().tobytes()
    return f"{head} router={hashlib.sha1(data).hexdigest()[:16]}"


class _Forward(NamedTuple):
    """What the model's pre-hook learned about the forward now running (host tensors).
    (NamedTuples, not dataclasses: they are built in hooks, where every microsecond counts.)"""

    start: int  # index of its first example
    batch: int
    lead: tuple[int, int] | None  # (B, T) of its token grid, when known
    tokens: torch.Tensor | None  # (B, T) ids
    positions: torch.Tensor | None  # (B or 1, T) position_ids the caller passed
    past: int  # tokens already in the key/value cache
    mask: torch.Tensor | None  # (B, T) bool, True for real (not padding) tokens


class _Chunk(NamedTuple):
    """One layer call: routing tensors (host, possibly still being copied) and where they go."""

    routing: Routing
    start: int
    batch: int
    length: int
    forward: _Forward | None  # set when the layer's token grid is the model's (B, T)


class RoutingRecorder:
    """Records each token's chosen experts, gate weights and router probabilities.

    Args:
        model: a model holding nasviz MoE layers or Hugging Face MoE blocks.
        labels: optional per-example labels, name -> array with one entry per example
            (sequence) in the order examples go through the model while recording (for example
            ``{"task": split.extras["task"], "class": split.y}``). Positions are recorded
            automatically. A label of the wrong length raises :class:`~nasviz.errors.MoEError`
            when the recording ends.
        skip_padding: leave out tokens whose ``attention_mask`` (passed to the model as a
            keyword, (B, T) or, with a cache, (B, past + T)) is 0.

    Use::

        with RoutingRecorder(model, labels={"task": test.extras["task"]}) as rec:
            model(test.X)
        stats = rec.stats()

    Examples and positions: every model forward brings ``B`` new examples (its first input's
    dimension 0) with positions ``0..T-1`` (or the ``position_ids`` passed), except a forward
    that continues from a non-empty key/value cache with the same batch, as ``generate()``'s
    decode steps do: its tokens belong to the previous forward's examples, at positions after
    the cached ones. So ``generate(input_ids=ids)`` records ``len(ids)`` examples, prompt and
    generated tokens together (beam search records each beam as an example).

    Devices: routing tensors are copied to the CPU as they are recorded (asynchronously from a
    GPU; the copies are waited for when the recording is read), so recording does not grow GPU
    memory.

    Thread contract: enter, exit and read the recorder from one thread. Forwards run while it
    is active are recorded in call order; forwards that run concurrently in other threads are
    not supported. A recorder may be entered again to add more forwards to the same recording,
    as long as the model's routers did not change in between.
    """

    def __init__(
        self,
        model: nn.Module,
        labels: Mapping[str, Sequence | np.ndarray] | None = None,
        skip_padding: bool = True,
    ) -> None:
        self.model = model
        self.skip_padding = skip_padding
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
        self._chunks: list[list[_Chunk]] = [[] for _ in self._layers]
        self._fingerprints: tuple[str, ...] | None = None
        self._offset = 0  # examples recorded so far
        self._last: tuple[int, int] | None = None  # (start, batch) of the last model forward
        self._forward: _Forward | None = None
        self._copying = False  # asynchronous GPU -> CPU copies were started
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
        fingerprints = tuple(layer_fingerprint(m, hf) for _, m, hf in self._layers)
        if self._fingerprints not in (None, fingerprints) and any(self._chunks):
            raise MoEError(
                "the model's routers changed since this recorder last recorded (trained, pruned "
                "or merged in between); record the changed model with a new RoutingRecorder"
            )
        self._fingerprints = fingerprints
        self._recording = None
        try:
            self._handles.append(
                self.model.register_forward_pre_hook(self._on_model_start, with_kwargs=True)
            )
            self._handles.append(self.model.register_forward_hook(self._on_model_end))
            for i, (_, module, hf) in enumerate(self._layers):
                if hf is None:
                    hook = module.register_routing_hook(
                        lambda mod, routing, i=i: self._add(i, routing)
                    )
                else:
                    hook = module.register_forward_hook(
                        lambda mod, args, out, i=i, hf=hf: self._add(i, hf.routing(_detach(out)))
                    )
                self._handles.append(hook)
        except BaseException:
            self._remove_hooks()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._remove_hooks()
        self._forward = None
        if exc_type is None:
            self.recording()  # checks label lengths now, where the user wrote the `with`

    def _remove_hooks(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def _host(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """``t`` on the CPU: the same tensor there, an asynchronous copy from a GPU."""
        if t is None or t.is_cpu:
            return t
        if t.is_cuda:
            self._copying = True
            return t.to("cpu", non_blocking=True)
        return t.cpu()

    def _on_model_start(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._forward = None
        x = _first_input(args, kwargs)
        if x is None:
            return
        batch = int(x.shape[0])
        integer = not x.is_floating_point() and not x.is_complex()
        lead = tuple(x.shape[:2]) if x.dim() == (2 if integer else 3) else None
        past = _cached_length(kwargs.get("past_key_values"))
        if past > 0 and self._last is not None and self._last[1] == batch:
            start = self._last[0]  # a decode step: the same examples, later positions
        else:
            start, self._offset = self._offset, self._offset + batch
        self._last = (start, batch)
        tokens = positions = mask = None
        if lead is not None:
            length = lead[1]
            tokens = self._host(x.detach()) if integer else None
            ids = kwargs.get("position_ids")
            if isinstance(ids, torch.Tensor) and ids.dim() == 2 and ids.shape[1] == length:
                positions = self._host(ids.detach())
            am = kwargs.get("attention_mask")
            if (
                self.skip_padding
                and isinstance(am, torch.Tensor)
                and am.dim() == 2
                and am.shape[0] == batch
                and am.shape[1] >= length
            ):
                mask = self._host(am[:, am.shape[1] - length :].detach() != 0)
        self._forward = _Forward(start, batch, lead, tokens, positions, past, mask)

    def _on_model_end(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._forward = None

    def _add(self, i: int, routing: Routing) -> None:
        n = routing.experts.shape[0]
        lead, forward = routing.shape, self._forward
        if len(lead) == 1 and forward is not None:  # a flattened input: the model's (B, T)
            if forward.lead is not None and math.prod(forward.lead) == n:
                lead = forward.lead
            elif n % forward.batch == 0:
                lead = (forward.batch, n // forward.batch)
        batch, length = (lead[0], math.prod(lead[1:])) if len(lead) >= 2 else (n, 1)
        if forward is None:  # a layer called outside the model's forward: one batch per call
            start, self._offset = self._offset, self._offset + batch
        else:
            start = forward.start
        same = forward is not None and forward.lead == (batch, length)
        if not routing.experts.is_cpu:
            routing = Routing(
                *(self._host(t) if isinstance(t, torch.Tensor) else t for t in routing)
            )
        # example/position/token arrays are built when the recording is read: the hook stays cheap
        self._chunks[i].append(_Chunk(routing, start, batch, length, forward if same else None))

    # ---- results ----------------------------------------------------------------------------
    def recording(self) -> Recording:
        """Everything recorded so far as a :class:`Recording` (numpy arrays)."""
        if self._recording is not None:
            return self._recording
        if self._copying and torch.cuda.is_available():
            torch.cuda.synchronize()  # the asynchronous copies to the CPU have landed
        layers = []
        for (name, module, hf), chunks, fingerprint in zip(
            self._layers,
            self._chunks,
            self._fingerprints or ("",) * len(self._layers),
            strict=True,
        ):
            num_experts = hf.num_experts if hf is not None else module.num_experts
            top_k = hf.top_k if hf is not None else module.top_k
            layers.append(_concat(name, num_experts, top_k, chunks, fingerprint))
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


def _detach(output: Any) -> Any:
    """A router's output with its tensors detached (only needed while autograd records)."""
    if not torch.is_grad_enabled():
        return output
    if isinstance(output, torch.Tensor):
        return output.detach()
    return type(output)(t.detach() if isinstance(t, torch.Tensor) else t for t in output)


def _first_input(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The tensor that says how many examples a forward holds: ``input_ids``, else
    ``inputs_embeds``, else the first positional tensor, else the first keyword tensor that is
    not a mask or positions."""
    named = (kwargs.get("input_ids"), kwargs.get("inputs_embeds"))
    others = (v for k, v in kwargs.items() if "mask" not in k and "position" not in k)
    for x in (*named, *args, *others):
        if isinstance(x, torch.Tensor):
            return x if x.dim() > 0 else None
    return None


def _cached_length(cache: Any) -> int:
    """Tokens already in a Hugging Face key/value cache (0 without one)."""
    if cache is None:
        return 0
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    if isinstance(cache, tuple | list) and cache and isinstance(cache[0], tuple | list):
        return int(cache[0][0].shape[-2])  # legacy tuples of (key, value), (B, H, L, hd)
    return 0


def _padded(t: torch.Tensor, width: int, value: float) -> np.ndarray:
    """``t`` as float/int numpy, right-padded to ``width`` columns (elastic calls: fewer
    experts or a smaller k than the widest call)."""
    if t.shape[1] < width:
        t = torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)
    return t.numpy()


def _chunk_arrays(chunk: _Chunk, num_experts: int, k: int) -> dict[str, np.ndarray]:
    """The LayerRecord arrays of one layer call, padding rows dropped."""
    r, b, n = chunk.routing, chunk.batch, chunk.length
    logits = r.logits.float()
    probs = torch.softmax(logits, dim=-1) if r.probs is None else r.probs.float()
    kept = torch.ones_like(r.experts, dtype=torch.bool) if r.kept is None else r.kept
    out = {
        "experts": _padded(r.experts.long(), k, -1),
        "gates": _padded(r.gates.float(), k, 0.0),
        "probs": _padded(probs, num_experts, 0.0),
        "logits": _padded(logits, num_experts, float("nan")),
        "dropped": _padded(~kept, k, False).astype(bool),
        "example": chunk.start + np.repeat(np.arange(b), n),
        "position": np.tile(np.arange(n), b),
        "token": np.full(b * n, -1, np.int64),
    }
    forward = chunk.forward
    if forward is None:
        return out
    if forward.positions is not None:
        out["position"] = forward.positions.expand(b, n).reshape(-1).numpy().astype(np.int64)
    else:
        out["position"] = out["position"] + forward.past
    if forward.tokens is not None:
        out["token"] = forward.tokens.reshape(-1).numpy().astype(np.int64)
    if forward.mask is not None:
        real = forward.mask.reshape(-1).numpy()
        out = {key: value[real] for key, value in out.items()}
    return out


def _concat(
    name: str, num_experts: int, top_k: int, chunks: list[_Chunk], fingerprint: str
) -> LayerRecord:
    k = max((c.routing.experts.shape[1] for c in chunks), default=top_k)
    parts = [_chunk_arrays(c, num_experts, k) for c in chunks]
    empty = {
        "experts": np.zeros((0, k), np.int64),
        "gates": np.zeros((0, k), np.float32),
        "probs": np.zeros((0, num_experts), np.float32),
        "logits": np.zeros((0, num_experts), np.float32),
        "dropped": np.zeros((0, k), bool),
        "example": np.zeros(0, np.int64),
        "position": np.zeros(0, np.int64),
        "token": np.zeros(0, np.int64),
    }
    arrays = {
        key: np.concatenate([value, *(p[key] for p in parts)]) for key, value in empty.items()
    }
    return LayerRecord(name, num_experts, k, fingerprint=fingerprint, **arrays)  # k: widest top-k
