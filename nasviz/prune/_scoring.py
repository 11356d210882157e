"""One calibration pass over a Hugging Face model, hooked to score heads, neurons and layers.

See :mod:`nasviz.prune._importance` for what the scores mean. The pass never changes the
model: hooks are removed, the training mode and ``requires_grad`` flags restored, and Taylor
gradients are taken with ``torch.autograd.grad`` on the hooked activations, so no parameter's
``.grad`` is touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasviz.errors import ConfigError
from nasviz.hf import HFAdapter

__all__ = ["ScoringPass", "calibration_mode", "run_batch", "structure"]

_INPUT_KEYS = ("attention_mask", "token_type_ids", "position_ids")


def structure(adapter: HFAdapter) -> tuple[tuple[int, int, int], ...]:
    """(heads, kv heads, FFN neurons) per layer: what the scores are indexed by."""
    out = []
    for i in range(adapter.num_layers):
        a, f = adapter.attention(i), adapter.ffn(i)
        out.append((a.heads, a.kv_heads, 0 if f is None else f.neurons))
    return tuple(out)


class ScoringPass:
    """Hooks of one calibration pass; accumulates per-unit sums (float64, on the CPU)."""

    def __init__(self, adapter: HFAdapter, taylor: bool) -> None:
        self.adapter, self.taylor = adapter, taylor
        n = adapter.num_layers
        self.attn = [adapter.attention(i) for i in range(n)]
        self.ffn = [adapter.ffn(i) for i in range(n)]
        self.heads = [torch.zeros(a.heads, dtype=torch.float64) for a in self.attn]
        self.neurons = [
            torch.zeros(0 if f is None else f.neurons, dtype=torch.float64) for f in self.ffn
        ]
        self.influence = torch.zeros(n, dtype=torch.float64)
        self.tokens = 0.0
        self.mask: torch.Tensor | None = None  # (B, T) weights of the batch running now
        self.saved: list[tuple[str, int, torch.Tensor]] = []  # taylor: activations to differentiate
        self.gram = []  # per layer: (heads, d, d) Gram matrices of the output projection's columns
        self.norms = []  # per layer: (neurons,) norms of the down projection's columns
        with torch.no_grad():
            for a, f in zip(self.attn, self.ffn, strict=True):
                w = a.o.columns().detach().float().reshape(-1, a.heads, a.head_dim)  # (D, h, d)
                self.gram.append(torch.einsum("Dhd,Dhe->hde", w, w))
                self.norms.append(
                    None if f is None else f.output.columns().detach().float().norm(dim=0)
                )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) token weights for an activation (B, T, ...): the attention mask where it
        lines up, else ones."""
        if self.mask is not None and self.mask.shape == x.shape[:2]:
            return self.mask.to(x.device, torch.float32)
        return torch.ones(x.shape[:2], device=x.device)

    @contextmanager
    def hooks(self) -> Iterator[None]:
        handles = []
        try:
            for i, (a, f) in enumerate(zip(self.attn, self.ffn, strict=True)):
                handles.append(a.o.module.register_forward_pre_hook(self._on_heads(i)))
                if f is not None:
                    handles.append(f.output.module.register_forward_pre_hook(self._on_neurons(i)))
                layer = self.adapter.layers()[i]
                handles.append(layer.register_forward_hook(self._on_layer(i), with_kwargs=True))
            yield
        finally:
            for h in handles:
                h.remove()

    def _on_heads(self, i: int):
        a = self.attn[i]

        def hook(module: nn.Module, args: tuple) -> None:
            z = args[0]  # (B, T, h*d)
            if self.taylor:
                self.saved.append(("heads", i, z))
                return
            with torch.no_grad():
                zh = z.detach().float().reshape(*z.shape[:2], a.heads, a.head_dim)  # (B, T, h, d)
                gram = self.gram[i].to(zh.device)
                sq = torch.einsum("bthd,hde,bthe->bth", zh, gram, zh)  # (B, T, h)
                w = self.weights(z)[..., None]  # (B, T, 1)
                self.heads[i] += (sq.clamp_min(0).sqrt() * w).sum(dim=(0, 1)).double().cpu()

        return hook

    def _on_neurons(self, i: int):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]  # (B, T, N)
            if self.taylor:
                self.saved.append(("neurons", i, x))
                return
            with torch.no_grad():
                w = self.weights(x)[..., None]  # (B, T, 1)
                mean_abs = (x.detach().float().abs() * w).sum(dim=(0, 1))  # (N,)
                self.neurons[i] += (mean_abs * self.norms[i].to(x.device)).double().cpu()

        return hook

    def _on_layer(self, i: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            x_in = args[0] if args else kwargs["hidden_states"]  # (B, T, D)
            x_out = out[0] if isinstance(out, tuple | list) else out  # (B, T, D)
            with torch.no_grad():
                cos = F.cosine_similarity(x_in.detach().float(), x_out.detach().float(), dim=-1)
                w = self.weights(x_in)  # (B, T)
                self.influence[i] += float(((1.0 - cos) * w).sum())
                if i == 0:
                    self.tokens += float(w.sum())

        return hook

    def taylor_step(self, loss: torch.Tensor) -> None:
        """Accumulates ``|sum z . dL/dz|`` of this batch for every saved activation."""
        grads = torch.autograd.grad(loss, [t for _, _, t in self.saved], allow_unused=True)
        with torch.no_grad():
            for (kind, i, x), g in zip(self.saved, grads, strict=True):
                if g is None:
                    continue
                w = self.weights(x)[..., None]  # (B, T, 1)
                prod = (x.detach().float() * g.float() * w).sum(dim=(0, 1))  # (h*d,) or (N,)
                if kind == "heads":
                    a = self.attn[i]
                    self.heads[i] += (
                        prod.reshape(a.heads, a.head_dim).sum(dim=1).abs().double().cpu()
                    )
                else:
                    self.neurons[i] += prod.abs().double().cpu()
        self.saved.clear()


@contextmanager
def calibration_mode(model: nn.Module, taylor: bool) -> Iterator[None]:
    """Eval mode, and (for Taylor) every parameter requiring grad so activations get gradients;
    both restored afterwards."""
    training = model.training
    frozen = [p for p in model.parameters() if not p.requires_grad] if taylor else []
    model.eval()
    try:
        for p in frozen:
            p.requires_grad_(True)
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)
        model.train(training)


def run_batch(
    model: nn.Module, adapter: HFAdapter, batch: dict[str, Any], taylor: bool
) -> torch.Tensor | None:
    """One forward: the base model (no head) for activations, the full model with a loss for
    Taylor; returns the loss."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    inputs = {k: batch[k] for k in (adapter.input_name, *_INPUT_KEYS) if k in batch}
    if not taylor:
        with torch.no_grad():
            getattr(model, "base_model", model)(**inputs)
        return None
    labels = batch.get("labels")
    if labels is None and getattr(model, "can_generate", lambda: False)():
        labels = batch[adapter.input_name]  # a causal LM predicts its own next tokens
    if labels is None:
        raise ConfigError(
            f"taylor importance needs a loss: give batches with labels ({type(model).__name__} is not a "
            "causal LM whose labels are its inputs), or use method='activation'"
        )
    out = model(**inputs, labels=labels)
    loss = getattr(out, "loss", None)
    if loss is None:
        raise ConfigError(f"{type(model).__name__} returned no loss for these labels")
    return loss
