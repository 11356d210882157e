"""``ElasticTransformer``: a token-sequence classifier with elastic layers, heads and FFN width,
and optionally a mixture-of-experts FFN whose kept experts and top-k are searched too."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nasviz._compat import renamed_arguments
from nasviz.errors import ConfigError, ShapeError
from nasviz.moe import MoE
from nasviz.space import Arch, SearchSpace
from nasviz.supernet._attention import ElasticAttention, sdpa_macs
from nasviz.supernet._base import BNStats, Supernet, register_supernet
from nasviz.supernet._blocks import FIXED, Block
from nasviz.supernet._ops import (
    ElasticLayerNorm,
    ElasticLinear,
    OptimizerState,
    export_linear,
    importance_order,
    permute_rows,
)
from nasviz.supernet._prepared import Prepared
from nasviz.supernet._validate import check_flag, check_int, check_ints

__all__ = ["ElasticTransformer", "StaticTransformer", "TransformerConfig"]


@dataclass(frozen=True)
class TransformerConfig:
    """Configuration of an :class:`ElasticTransformer` (see its arguments)."""

    vocab_size: int
    seq_len: int
    num_classes: int
    dim: int = 64
    head_dim: int = 16
    layers: tuple[int, ...] = (1, 2, 3)
    heads: tuple[int, ...] = (1, 2, 4)
    ffn_widths: tuple[int, ...] = (64, 128, 256)
    moe: bool = False
    experts: tuple[int, ...] = (2, 4)
    top_ks: tuple[int, ...] = (1, 2)


class _Layer(NamedTuple):
    heads: int
    ffn: int
    experts: int | None
    top_k: int | None


class _Plan(NamedTuple):
    arch: Arch
    layers: tuple[_Layer, ...]


class _Block(nn.Module):
    """Pre-norm block: ``x + attn(ln1(x))``, then ``x + ffn(ln2(x))``."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1 = ElasticLayerNorm(cfg.dim)
        self.attn = ElasticAttention(cfg.dim, max(cfg.heads), cfg.head_dim)
        self.ln2 = ElasticLayerNorm(cfg.dim)
        if cfg.moe:
            self.moe = MoE(cfg.dim, max(cfg.ffn_widths), max(cfg.experts), top_k=max(cfg.top_ks))
        else:
            self.fc1 = ElasticLinear(cfg.dim, max(cfg.ffn_widths))
            self.fc2 = ElasticLinear(max(cfg.ffn_widths), cfg.dim)

    def forward(self, x: torch.Tensor, layer: _Layer, prepared: Prepared | None) -> torch.Tensor:
        # x: (B, T, D) -> (B, T, D)
        x = x + self.attn(self.ln1(x, prepared), layer.heads, prepared)
        h = self.ln2(x, prepared)  # (B, T, D)
        if layer.experts is not None:
            return x + self.moe(h, layer.experts, layer.top_k, layer.ffn)
        h = F.gelu(self.fc1(h, layer.ffn, prepared))  # (B, T, ffn)
        return x + self.fc2(h, None, prepared)  # (B, T, D)


class _StaticBlock(nn.Module):
    def __init__(self, ln1: nn.LayerNorm, attn: nn.Module, ln2: nn.LayerNorm, ffn: nn.Module):
        super().__init__()
        self.ln1, self.attn, self.ln2, self.ffn = ln1, attn, ln2, ffn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D) -> (B, T, D)
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class StaticTransformer(nn.Module):
    """An exported ElasticTransformer subnet: plain torch layers (and nasviz ``MoE`` FFNs)."""

    def __init__(
        self,
        embed: nn.Embedding,
        pos: torch.Tensor,
        blocks: Sequence[nn.Module],
        norm: nn.LayerNorm,
        head: nn.Linear,
    ):
        super().__init__()
        self.embed = embed
        self.pos = nn.Parameter(pos)
        self.blocks = nn.ModuleList(blocks)
        self.norm, self.head = norm, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T) token ids -> (B, num_classes)
        h = self.embed(x) + self.pos[: x.shape[1]]  # (B, T, D)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(1))  # (B, C)


class _Embed(nn.Module):
    """The embedding block of an exported subnet (for latency tables): tokens plus positions."""

    def __init__(self, embed: nn.Embedding, pos: torch.Tensor):
        super().__init__()
        self.embed, self.pos = embed, nn.Parameter(pos)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T) token ids -> (B, T, D)
        return self.embed(x) + self.pos[: x.shape[1]]


class _Pool(nn.Module):
    """The head block of an exported subnet (for latency tables): norm, mean over tokens, head."""

    def __init__(self, norm: nn.LayerNorm, head: nn.Linear):
        super().__init__()
        self.norm, self.head = norm, head

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # h: (B, T, D) -> (B, C)
        return self.head(self.norm(h).mean(1))


def _layer_norm(ln: nn.LayerNorm) -> nn.LayerNorm:
    new = nn.LayerNorm(ln.normalized_shape, eps=ln.eps, dtype=ln.weight.dtype)
    new.load_state_dict(ln.state_dict())
    return new


@register_supernet
class ElasticTransformer(Supernet):
    """Token embedding + learned positions, elastic pre-norm blocks, mean pooling, classifier.

    Search space: ``layers`` (blocks run), per block ``heads.i`` (attention heads) and ``ffn.i``
    (FFN hidden width; with ``moe``, each expert's hidden width), and with ``moe`` per block
    ``experts.i`` (experts kept: the router only scores the first ones) and ``top_k.i``.

    Args:
        vocab_size: token ids are ``0 .. vocab_size - 1`` (see :func:`nasviz.data.tasks`).
        seq_len: the longest sequence (learned positions).
        num_classes: output logits (at least 2).
        dim: model width.
        head_dim: width of one attention head.
        layers: allowed numbers of blocks.
        heads: allowed attention heads per block.
        ffn_widths: allowed FFN hidden widths per block (each expert's, with ``moe``).
        moe: use a :class:`nasviz.moe.MoE` FFN in every block.
        experts: allowed experts kept per block (with ``moe``).
        top_ks: allowed experts per token (with ``moe``; the largest must not exceed the
            fewest experts kept).

    Every argument that lists allowed values is plural, as the other families' (``widths``,
    ``kernels``, ``depths``); the search dimensions they make are singular (``ffn.0``,
    ``top_k.0``). The previous names ``ffn=`` and ``top_k=`` still work with a FutureWarning,
    and checkpoints and hardware profiles saved under them load as they are.
    """

    family = "ElasticTransformer"
    input_kind = "token ids"
    config_class = TransformerConfig
    shrink_order = ("layers", "heads", "ffn", "experts", "top_k")
    width_groups = ("heads", "ffn")
    default_epochs = 20
    renamed_config: ClassVar[Mapping[str, str]] = {"ffn": "ffn_widths", "top_k": "top_ks"}

    @renamed_arguments(ffn="ffn_widths", top_k="top_ks")
    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        num_classes: int,
        dim: int = 64,
        head_dim: int = 16,
        layers: Sequence[int] = (1, 2, 3),
        heads: Sequence[int] = (1, 2, 4),
        ffn_widths: Sequence[int] = (64, 128, 256),
        moe: bool = False,
        experts: Sequence[int] = (2, 4),
        top_ks: Sequence[int] = (1, 2),
    ):
        cfg = TransformerConfig(
            check_int("vocab_size", vocab_size, 1),
            check_int("seq_len", seq_len, 1),
            check_int("num_classes", num_classes, 2),
            check_int("dim", dim, 1),
            check_int("head_dim", head_dim, 1),
            check_ints("layers", layers),
            check_ints("heads", heads),
            check_ints("ffn_widths", ffn_widths),
            check_flag("moe", moe),
            check_ints("experts", experts),
            check_ints("top_ks", top_ks),
        )
        if cfg.moe and max(cfg.top_ks) > min(cfg.experts):
            raise ConfigError(
                f"top_ks {cfg.top_ks} must not exceed the fewest experts kept "
                f"(experts {cfg.experts}): a token cannot go to more experts than there are"
            )
        super().__init__(cfg)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos = nn.Parameter(torch.randn(cfg.seq_len, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(max(cfg.layers)))
        self.norm = ElasticLayerNorm(cfg.dim)
        self.head = ElasticLinear(cfg.dim, cfg.num_classes)
        n = max(cfg.layers)
        dims = {
            "layers": list(cfg.layers),
            **SearchSpace.repeated("heads", n, cfg.heads),
            **SearchSpace.repeated("ffn", n, cfg.ffn_widths),
        }
        if cfg.moe:
            dims |= SearchSpace.repeated("experts", n, cfg.experts) | SearchSpace.repeated(
                "top_k", n, cfg.top_ks
            )
        self.space = SearchSpace(dims)
        self._finish_init()

    @classmethod
    def for_data(cls, data: Any, **kwargs: Any) -> ElasticTransformer:
        """An ElasticTransformer sized for a token Dataset (vocabulary, length, classes)."""
        if data.vocab_size is None or len(data.input_shape) != 1:
            raise ConfigError(
                f"ElasticTransformer needs token sequences; {data!r} has no vocab_size or is not 1-D"
            )
        return cls(data.vocab_size, data.input_shape[0], data.num_classes, **kwargs)

    def canonical(self, arch: Mapping[str, Any]) -> Arch:
        """``arch`` with the per-block values of blocks past ``layers`` (unused: heads, ffn and,
        with MoE, experts and top_k) set to their smallest values."""
        arch = self.space.validate(arch)
        cfg = self.config
        smallest = {"heads": cfg.heads[0], "ffn": cfg.ffn_widths[0]}
        if cfg.moe:
            smallest |= {"experts": cfg.experts[0], "top_k": cfg.top_ks[0]}
        unused = range(arch["layers"], max(cfg.layers))
        return arch.replace(**{f"{name}.{i}": v for name, v in smallest.items() for i in unused})

    def _make_plan(self, arch: Arch) -> _Plan:
        n = arch["layers"]
        heads, ffn = arch.group("heads")[:n], arch.group("ffn")[:n]
        experts = arch.group("experts")[:n] if self.config.moe else (None,) * n
        top_k = arch.group("top_k")[:n] if self.config.moe else (None,) * n
        return _Plan(arch, tuple(_Layer(*v) for v in zip(heads, ffn, experts, top_k, strict=False)))

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 2 or not 1 <= shape[1] <= self.config.seq_len:
            raise ShapeError(
                f"ElasticTransformer expects token ids of shape (batch, T) with "
                f"1 <= T <= {self.config.seq_len}; got {tuple(shape)}"
            )

    @property
    def input_dtype(self) -> torch.dtype:
        return torch.int64

    def _check_values(self, x: torch.Tensor) -> None:
        if x.dtype not in (torch.int64, torch.int32):
            raise ShapeError(
                f"ElasticTransformer expects token ids as int64 (or int32); got {str(x.dtype).removeprefix('torch.')}"
            )
        low, high = (int(v) for v in torch.aminmax(x))
        if low < 0 or high >= self.config.vocab_size:
            raise ShapeError(
                f"ElasticTransformer expects token ids in 0..{self.config.vocab_size - 1} (its "
                f"vocabulary); got ids from {low} to {high}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T) int64 token ids, T <= seq_len
        self._check_input(x)
        state = self._state()
        prepared = self._prepared(state, None)
        h = self.embed(x) + self.pos[: x.shape[1]]  # (B, T, D)
        for block, layer in zip(self.blocks, state.plan.layers, strict=False):
            h = block(h, layer, prepared)  # (B, T, D)
        return self.head(self.norm(h, prepared).mean(1), None, prepared)  # (B, C)

    def aux_loss(self) -> torch.Tensor:
        """Sum of the load-balancing losses of the active MoE layers' most recent forward in
        this thread (0 without MoE)."""
        if not self.config.moe:
            return self.pos.new_zeros(())
        layers = len(self._state().plan.layers)
        return sum((b.moe.aux_loss for b in self.blocks[:layers]), self.pos.new_zeros(()))

    def _export(self, plan: _Plan, stats: BNStats | None) -> nn.Module:
        blocks = [
            self._export_layer(b, layer) for b, layer in zip(self.blocks, plan.layers, strict=False)
        ]
        head = export_linear(self.head, self.config.dim, self.config.num_classes)
        return StaticTransformer(
            self._export_embedding(),
            self.pos.detach().clone(),
            blocks,
            _layer_norm(self.norm),
            head,
        )

    def _export_embedding(self) -> nn.Embedding:
        cfg = self.config
        embed = nn.Embedding(cfg.vocab_size, cfg.dim, dtype=self.embed.weight.dtype)
        embed.weight.data.copy_(self.embed.weight)
        return embed

    def _export_layer(self, b: _Block, layer: _Layer) -> _StaticBlock:
        cfg = self.config
        if layer.experts is not None:
            ffn: nn.Module = b.moe.sliced(layer.experts, layer.top_k, layer.ffn)
        else:
            ffn = nn.Sequential(
                export_linear(b.fc1, cfg.dim, layer.ffn),
                nn.GELU(),
                export_linear(b.fc2, layer.ffn, cfg.dim),
            )
        return _StaticBlock(_layer_norm(b.ln1), b.attn.export(layer.heads), _layer_norm(b.ln2), ffn)

    # ---- blocks: "embed", "layer{i}" (choices: heads, ffn[, experts, top_k]), "head" -------
    def _layer_dims(self, i: int) -> tuple[str, ...]:
        names = ("heads", "ffn", "experts", "top_k") if self.config.moe else ("heads", "ffn")
        return tuple(f"{name}.{i}" for name in names)

    def _block_space(self) -> tuple[Block, ...]:
        cfg = self.config
        values = [cfg.heads, cfg.ffn_widths, *((cfg.experts, cfg.top_ks) if cfg.moe else ())]
        layers = []
        for i in range(max(cfg.layers)):
            dims = self._layer_dims(i)
            names = [d.split(".")[0] for d in dims]
            choices = tuple(Arch(zip(names, c, strict=True)) for c in itertools.product(*values))
            layers.append(Block(f"layer{i}", ("layers", *dims), choices))
        return (Block("embed", (), (FIXED,)), *layers, Block("head", (), (FIXED,)))

    def _block_choices(self, plan: _Plan) -> tuple[tuple[str, Arch], ...]:
        layers = []
        for i, layer in enumerate(plan.layers):
            values = layer if self.config.moe else layer[:2]
            names = [d.split(".")[0] for d in self._layer_dims(i)]
            layers.append((f"layer{i}", Arch(zip(names, values, strict=True))))
        return (("embed", FIXED), *layers, ("head", FIXED))

    def _export_block(self, name: str, choice: Arch) -> nn.Module:
        if name == "embed":
            return _Embed(self._export_embedding(), self.pos.detach().clone())
        if name == "head":
            head = export_linear(self.head, self.config.dim, self.config.num_classes)
            return _Pool(_layer_norm(self.norm), head)
        i = int(name.removeprefix("layer"))
        layer = _Layer(choice["heads"], choice["ffn"], choice.get("experts"), choice.get("top_k"))
        return self._export_layer(self.blocks[i], layer)

    def _block_input_shape(
        self, name: str, choice: Arch, shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        return shape if name == "embed" else (*shape, self.config.dim)

    def _count_macs(self, plan: _Plan, shape: tuple[int, ...]) -> int:
        batch, length = shape
        d, tokens = self.config.dim, batch * length
        total = batch * d * self.config.num_classes  # head
        for layer in plan.layers:
            width = layer.heads * self.config.head_dim
            total += 4 * tokens * d * width  # q, k, v and output projections
            total += sdpa_macs(batch, layer.heads, length, self.config.head_dim)
            if layer.experts is None:
                total += 2 * tokens * d * layer.ffn
            else:  # router, then top_k equally sized experts per token, whichever they are
                total += tokens * d * layer.experts + layer.top_k * tokens * 2 * d * layer.ffn
        return total

    def count_params(self, arch: Mapping[str, Any]) -> int:
        plan = self._plan(arch)
        d = self.config.dim
        total = (
            (self.config.vocab_size + self.config.seq_len) * d
            + 2 * d
            + d * self.config.num_classes
            + self.config.num_classes
        )
        for b, layer in zip(self.blocks, plan.layers, strict=False):
            ffn = d * layer.ffn + layer.ffn + layer.ffn * d + d
            if layer.experts is not None:
                ffn = layer.experts * (ffn + d)  # each expert's FFN plus its router row
            total += 4 * d + b.attn.count_params(layer.heads) + ffn
        return total

    @torch.no_grad()
    def reorder_channels(self, optimizer_state: OptimizerState | None = None) -> None:
        """Sorts attention heads and FFN hidden units (each expert's too) by L1 importance."""
        for b in self.blocks:
            b.attn.reorder_heads(optimizer_state)
            pairs = [(e.fc1, e.fc2) for e in b.moe.experts] if self.config.moe else [(b.fc1, b.fc2)]
            for fc1, fc2 in pairs:
                order = importance_order(fc2.weight.abs().sum(0))
                permute_rows(fc1.weight, order, 0, optimizer_state)
                permute_rows(fc1.bias, order, 0, optimizer_state)
                permute_rows(fc2.weight, order, 1, optimizer_state)
