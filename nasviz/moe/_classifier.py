"""A small MoE token-sequence classifier: the teaching example where experts specialize by task.

:class:`MoEClassifier` embeds tokens (plus positions), runs them through ``num_layers``
pre-norm residual MoE blocks, mean-pools and classifies. Trained with :func:`train_moe` on
:func:`nasviz.data.tasks` (whose tasks use disjoint content tokens), its routers learn to send
each task's tokens to their own experts, which :class:`~nasviz.moe.RoutingRecorder` shows.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from nasviz._compat import REMOVED_IN, keyword_only_after
from nasviz.errors import ConfigError, ShapeError
from nasviz.moe._layer import MoE

__all__ = ["MoEClassifier", "train_moe"]


class MoEClassifier(nn.Module):
    """Token embedding -> ``num_layers`` x (+ first-token context, LayerNorm -> MoE, residual) -> mean pool -> MLP head.

    Arguments after ``vocab_size`` are keyword-only, named as ElasticTransformer's (``seq_len``,
    ``num_classes``, ``dim``, ...); the previous positional order (``num_classes, seq_len``)
    still works with a FutureWarning.

    Args:
        vocab_size: number of token ids.
        seq_len: maximum sequence length (learned position embeddings).
        num_classes: number of output classes.
        dim: token width.
        hidden: hidden width of each expert.
        num_experts: experts per MoE layer.
        top_k: experts per token.
        num_layers: number of MoE blocks.
        temperature, capacity_factor: passed to each :class:`MoE`.
        context: before each MoE block, add a linear map of the sequence's first token to every
            token. In ``data.tasks()`` the first token is the task marker, so routers can see
            the task (like a prompt seen through attention), which is what lets experts specialize.
    """

    @keyword_only_after(
        "num_classes",
        "seq_len",
        "dim",
        "hidden",
        "num_experts",
        "top_k",
        "num_layers",
        "temperature",
        "capacity_factor",
        "context",
    )
    def __init__(
        self,
        vocab_size: int,
        *,
        seq_len: int,
        num_classes: int,
        dim: int = 32,
        hidden: int = 64,
        num_experts: int = 4,
        top_k: int = 2,
        num_layers: int = 2,
        temperature: float = 1.0,
        capacity_factor: float | None = None,
        context: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        self.seq_len = seq_len
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(seq_len, dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_layers))
        self.context = (
            nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers)) if context else None
        )
        self.moes = nn.ModuleList(
            MoE(dim, hidden, num_experts, top_k, temperature, capacity_factor)
            for _ in range(num_layers)
        )
        self.head = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, num_classes)
        )

    @classmethod
    def for_data(cls, data: Any, **kwargs: Any) -> MoEClassifier:
        """A classifier sized for a token :class:`~nasviz.data.Dataset` (e.g. ``data.tasks()``),
        as the supernets' ``for_data``."""
        if data.vocab_size is None:
            raise ConfigError(
                f"MoEClassifier needs token data (a vocab_size); dataset {data.name!r} has none"
            )
        return cls(
            data.vocab_size, seq_len=data.input_shape[0], num_classes=data.num_classes, **kwargs
        )

    @classmethod
    def for_dataset(cls, data: Any, **kwargs: Any) -> MoEClassifier:
        """Deprecated name of :meth:`for_data`."""
        warnings.warn(
            f"MoEClassifier.for_dataset() is now for_data(); for_dataset() stops working in "
            f"nasviz {REMOVED_IN}",
            FutureWarning,
            stacklevel=2,
        )
        return cls.for_data(data, **kwargs)

    @property
    def aux_loss(self) -> torch.Tensor:
        """Sum of the MoE layers' load-balancing losses from this thread's last forward."""
        return sum((m.aux_loss for m in self.moes), torch.zeros(()))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] > self.seq_len:
            raise ShapeError(
                f"MoEClassifier expects token ids (B, T<={self.seq_len}), got shape {tuple(tokens.shape)}"
            )
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.embed(tokens) + self.pos(positions)  # (B, T, D)
        for i, (norm, moe) in enumerate(zip(self.norms, self.moes, strict=True)):
            if (
                self.context is not None
            ):  # every token also sees its sequence's first token (a prompt)
                x = x + self.context[i](x[:, :1])  # (B, T, D)
            x = x + moe(norm(x))  # (B, T, D)
        return self.head(x.mean(dim=1))  # (B, C)


def train_moe(
    model: nn.Module,
    data: Any,
    epochs: int = 8,
    lr: float = 3e-3,
    batch_size: int = 64,
    aux_weight: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """Trains ``model`` in place on ``data.train`` with cross entropy plus ``aux_weight`` times
    the load-balancing loss; a few seconds on a CPU for the default classifier.

    Blocking and meant for small teaching models; long supernet training uses the background
    runs of :mod:`nasviz.supernet`.

    Returns:
        One row per epoch: ``epoch``, ``loss``, ``aux_loss``, ``val_accuracy`` (percent).
    """
    from nasviz.objectives import evaluate_accuracy

    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rows = []
    for epoch in range(epochs):
        model.train()
        total = aux_total = 0.0
        batches = 0
        for X, y in data.train.loader(batch_size, shuffle=True, seed=seed + epoch):
            logits = model(X)
            aux = getattr(model, "aux_loss", None)
            aux = (aux() if callable(aux) else aux) if aux is not None else torch.zeros(())
            loss = F.cross_entropy(logits, y) + aux_weight * aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, aux_total, batches = (
                total + float(loss.detach()),
                aux_total + float(aux.detach()),
                batches + 1,
            )
        rows.append(
            {
                "epoch": epoch + 1,
                "loss": total / batches,
                "aux_loss": aux_total / batches,
                "val_accuracy": evaluate_accuracy(model, data.val),
            }
        )
    model.eval()
    return pd.DataFrame(rows)
