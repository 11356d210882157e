"""A top-k softmax-router mixture-of-experts FFN (``MoE``) and its experts.

The router scores every token against every expert, keeps the ``top_k`` best, renormalizes
the kept gates to sum to one and sends the token to those experts; the output is the
gate-weighted sum of their outputs. The standard load-balancing loss
``E * sum_e f_e * P_e`` (``f_e``: fraction of routed assignments that went to expert ``e``,
``P_e``: mean router probability of ``e``) is kept in :attr:`MoE.aux_loss` after each forward.

Dispatch is vectorized: a loop over experts, never over tokens. The loop runs over the expert
modules the layer can reach (a number fixed by the module, never read from the data), each
taking the tokens routed to it, so the same graph is right for every input under
``torch.export``, the ONNX exporters and ``torch.jit.trace``: a traced layer keeps every
expert, not only those its example input used. In eager mode an expert that received no token
is skipped (the same result, sooner). Elastic arguments let a supernet run the layer with fewer
experts, a smaller ``top_k`` or a narrower hidden layer by slicing the shared weights (no
copies); :meth:`MoE.sliced` copies such a slice out.

Routing observers (the :class:`~nasviz.moe.RoutingRecorder`) attach with
:meth:`MoE.register_routing_hook`; they see each forward's :class:`Routing` and never change
the output.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from nasviz.errors import ConfigError, MoEError, ShapeError

__all__ = ["Expert", "MoE", "Routing", "load_balancing_loss", "route"]


class Routing(NamedTuple):
    """One forward's routing decisions over ``N`` flattened tokens.

    Attributes:
        logits: router logits, (N, E) with ``E`` the active number of experts.
        probs: softmax of ``logits / temperature``, (N, E); None from Hugging Face routers, whose
            probabilities are the plain softmax of ``logits``, taken when a recording is read.
        experts: chosen expert indices, best first, (N, k), int64.
        gates: renormalized gate weights of the chosen experts, (N, k); an assignment dropped
            by the capacity limit has gate 0.
        shape: leading shape of the layer's input (``(B, T)`` or ``(N,)``).
        kept: bool (N, k): which assignments an expert processed (False: dropped by a capacity
            limit); None when nothing can be dropped.
    """

    logits: torch.Tensor
    probs: torch.Tensor | None
    experts: torch.Tensor
    gates: torch.Tensor
    shape: tuple[int, ...]
    kept: torch.Tensor | None = None


def route(
    logits: torch.Tensor, top_k: int, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k softmax routing.

    Args:
        logits: router logits, (N, E).
        top_k: experts kept per token, ``1 <= top_k <= E``.
        temperature: softmax temperature (> 0); lower is sharper.

    Returns:
        ``(probs, experts, gates)``: probabilities (N, E), chosen indices (N, k) and the kept
        probabilities renormalized to sum to one per token (N, k).
    """
    probs = torch.softmax(logits.float() / temperature, dim=-1).to(logits.dtype)  # (N, E)
    top, experts = probs.topk(top_k, dim=-1)  # (N, k)
    gates = top / top.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(top.dtype).tiny)
    return probs, experts, gates


def load_balancing_loss(probs: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """``E * sum_e f_e * P_e``: 1.0 when routing is perfectly uniform, up to ``E`` when collapsed.

    Args:
        probs: router probabilities, (N, E).
        experts: chosen expert indices, (N, k).
    """
    num_experts = probs.shape[-1]
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    counts = torch.bincount(experts.reshape(-1), minlength=num_experts).to(probs.dtype)  # (E,)
    f = counts / experts.numel()
    p = probs.mean(dim=0)  # (E,)
    return num_experts * (f * p).sum()


def _recording_graph() -> bool:
    """True while ``torch.export`` (and the ONNX exporter built on it) or ``torch.jit.trace``
    records a forward: its tensors are symbolic or baked in, so nothing may be kept from them
    (aux loss, routing hooks)."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def _data_dependent_skips_allowed() -> bool:
    """True in plain eager mode, where skipping an expert that received no token is only
    faster; a graph being recorded (export, trace, compile) must keep every expert."""
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling())


class Expert(nn.Module):
    """One expert: ``fc2(GELU(fc1(x)))``, usable with only its first ``hidden`` hidden units."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, hidden: int | None = None) -> torch.Tensor:
        if hidden is None or hidden == self.fc1.out_features:
            return self.fc2(self.act(self.fc1(x)))
        h = F.linear(x, self.fc1.weight[:hidden], self.fc1.bias[:hidden])  # (n, hidden)
        return F.linear(self.act(h), self.fc2.weight[:, :hidden], self.fc2.bias)  # (n, D)


class _PerThread:
    """Per-thread value store that deep copies and pickles as empty (tensors in it may carry
    autograd history, which ``copy.deepcopy`` refuses)."""

    def __init__(self) -> None:
        self._values: dict[int, torch.Tensor] = {}

    def get(self) -> torch.Tensor | None:
        return self._values.get(threading.get_ident())

    def set(self, value: torch.Tensor) -> None:
        self._values[threading.get_ident()] = value

    def __deepcopy__(self, memo: dict) -> _PerThread:
        return _PerThread()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._values = {}


class MoE(nn.Module):
    """Top-k softmax-router mixture-of-experts FFN.

    Args:
        dim: token width ``D`` (input and output).
        hidden: hidden width of each expert.
        num_experts: number of experts ``E`` (>= 1).
        top_k: experts per token, ``1 <= top_k <= num_experts``. With ``top_k=1`` the
            renormalized gate is always 1, so the router learns only from the load-balancing
            loss; use ``top_k >= 2`` when the router should learn from the task.
        temperature: router softmax temperature (> 0).
        capacity_factor: if set, each expert takes at most
            ``ceil(capacity_factor * N * top_k / E)`` assignments per forward (``E``: the
            distinct experts in use, so after merging a merged expert has one capacity, not one
            per router slot); later ones (first choices of all tokens before second choices,
            then token order) are dropped: gate 0, the expert never sees the token, and a token
            whose every assignment was dropped gets a zero output (in a residual block it passes
            through unchanged). The kept gates are not renormalized.

    Attributes:
        router: ``Linear(dim, num_experts, bias=False)``.
        experts: ``ModuleList`` of :class:`Expert`.
        expert_map: optional int64 buffer (E,) mapping router slots to experts; set by expert
            merging so that several router slots share one merged expert. ``None`` is identity.

    Thread contract: several threads may run forward at once (e.g. evaluation threads of a
    search); :attr:`aux_loss` is kept per calling thread. Registering or removing routing hooks
    while another thread runs forward is not supported.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        num_experts: int,
        top_k: int = 2,
        temperature: float = 1.0,
        capacity_factor: float | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("num_experts", num_experts)):
            if int(value) < 1:
                raise ConfigError(f"MoE {name} must be >= 1, got {value}")
        if not 1 <= top_k <= num_experts:
            raise ConfigError(f"MoE top_k must be in 1..num_experts={num_experts}, got {top_k}")
        if temperature <= 0:
            raise ConfigError(f"MoE temperature must be > 0, got {temperature}")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ConfigError(f"MoE capacity_factor must be > 0 or None, got {capacity_factor}")
        self.dim, self.hidden, self.num_experts, self.top_k = (
            int(dim),
            int(hidden),
            int(num_experts),
            int(top_k),
        )
        self.temperature = float(temperature)
        self.capacity_factor = None if capacity_factor is None else float(capacity_factor)
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList(Expert(dim, hidden) for _ in range(num_experts))
        self.register_buffer("expert_map", None)
        self._aux = _PerThread()
        self._routing_hooks: OrderedDict[int, Callable[[MoE, Routing], None]] = OrderedDict()

    def extra_repr(self) -> str:
        extra = f", capacity_factor={self.capacity_factor}" if self.capacity_factor else ""
        return f"dim={self.dim}, hidden={self.hidden}, num_experts={self.num_experts}, top_k={self.top_k}, temperature={self.temperature}{extra}"

    @property
    def aux_loss(self) -> torch.Tensor:
        """Load-balancing loss of this thread's most recent forward (0 before any forward)."""
        value = self._aux.get()
        return value if value is not None else self.router.weight.new_zeros(())

    def register_routing_hook(self, hook: Callable[[MoE, Routing], None]) -> RemovableHandle:
        """Calls ``hook(module, routing)`` after each forward's routing; returns a handle whose
        ``.remove()`` detaches it. Hooks must not modify the tensors they receive."""
        handle = RemovableHandle(self._routing_hooks)
        self._routing_hooks[handle.id] = hook
        return handle

    def _check_elastic(
        self, num_experts: int | None, top_k: int | None, hidden: int | None
    ) -> tuple[int, int, int | None]:
        e = self.num_experts if num_experts is None else int(num_experts)
        if not 1 <= e <= self.num_experts:
            raise MoEError(f"num_experts must be in 1..{self.num_experts}, got {num_experts}")
        k = min(self.top_k, e) if top_k is None else int(top_k)
        if not 1 <= k <= e:
            raise MoEError(f"top_k must be in 1..{e} (the active experts), got {top_k}")
        if hidden is not None and not 1 <= int(hidden) <= self.hidden:
            raise MoEError(f"hidden must be in 1..{self.hidden}, got {hidden}")
        return e, k, None if hidden is None or int(hidden) == self.hidden else int(hidden)

    def _capacity_keep(self, physical: torch.Tensor, num_experts: int) -> torch.Tensor:
        """Bool (N, k): which assignments fit in their expert module's capacity; the capacity
        divides by the distinct modules the first ``num_experts`` router slots reach."""
        n, k = physical.shape
        if self.expert_map is None:
            capacity = math.ceil(self.capacity_factor * n * k / num_experts)
        else:  # distinct modules reached, as a tensor (no data-dependent Python int to export)
            reached = F.one_hot(self.expert_map[:num_experts], len(self.experts)).amax(0)  # (M,)
            capacity = torch.ceil(self.capacity_factor * n * k / reached.sum().double())
        order = physical.t().reshape(-1)  # (k*N,) first choices of every token, then second...
        onehot = F.one_hot(order, len(self.experts))  # (k*N, experts)
        position = (onehot.cumsum(dim=0) * onehot).sum(dim=-1) - 1  # (k*N,) place in its queue
        return (position < capacity).reshape(k, n).t()  # (N, k)

    def _call_routing_hooks(self, routing: Routing) -> None:
        if torch.is_grad_enabled():  # observers never hold on to the autograd graph
            routing = routing._replace(
                logits=routing.logits.detach(),
                probs=routing.probs.detach(),
                gates=routing.gates.detach(),
            )
        for hook in list(self._routing_hooks.values()):
            hook(self, routing)

    def forward(
        self,
        x: torch.Tensor,
        num_experts: int | None = None,
        top_k: int | None = None,
        hidden: int | None = None,
    ) -> torch.Tensor:
        """Routes each token of ``x`` ((B, T, D) or (N, D)) and returns the same shape.

        ``num_experts``, ``top_k``, ``hidden``: elastic sizes (None: the full layer).
        """
        if x.shape[-1] != self.dim:
            raise ShapeError(
                f"MoE expects inputs with last dimension {self.dim}, got shape {tuple(x.shape)}"
            )
        e, k, h = self._check_elastic(num_experts, top_k, hidden)
        lead = tuple(x.shape[:-1])
        flat = x.reshape(-1, self.dim)  # (N, D)
        logits = F.linear(flat, self.router.weight[:e])  # (N, E)
        probs, experts, gates = route(logits, k, self.temperature)  # (N, E), (N, k), (N, k)
        physical = experts if self.expert_map is None else self.expert_map[experts]  # (N, k)
        kept = None
        if self.capacity_factor is not None:
            kept = self._capacity_keep(physical, e)  # (N, k)
            gates = gates * kept.to(gates.dtype)
            physical = physical.masked_fill(~kept, -1)  # dropped: no expert computes it
        if not _recording_graph():
            self._aux.set(load_balancing_loss(probs, experts))
            if self._routing_hooks:
                self._call_routing_hooks(Routing(logits, probs, experts, gates, lead, kept))
        # eager mode only: the modules some assignment reached (one host sync); the others are
        # skipped, which changes nothing but time
        used = set(torch.unique(physical).tolist()) if _data_dependent_skips_allowed() else None
        # Each call below sends an expert distinct tokens (exporters cannot add duplicate
        # indices): a token reaches a module through at most one of its k slots, unless merged
        # router slots share the module; then each slot is a call of its own.
        if self.expert_map is None:
            modules, calls = e, [(physical, gates)]  # (N, k), (N, k)
        else:
            modules = len(self.experts)
            calls = [(physical[:, s : s + 1], gates[:, s : s + 1]) for s in range(k)]  # (N, 1)
        out = torch.zeros_like(flat)  # (N, D)
        for j in range(modules):  # loop over experts (a count fixed by the module), never tokens
            if used is not None and j not in used:
                continue
            for chosen, gate in calls:
                token, slot = (chosen == j).nonzero(as_tuple=True)  # (n,), (n,); dropped: -1
                if used is not None and token.numel() == 0:
                    continue  # (eager) a merged module no token reached through this slot
                y = self.experts[j](flat[token], h)  # (n, D)
                out.index_add_(0, token, y * gate[token, slot].unsqueeze(-1).to(y.dtype))
        return out.reshape(*lead, self.dim)

    def sliced(self, num_experts: int, top_k: int, hidden: int) -> MoE:
        """A standalone MoE with copied weights whose output equals
        ``forward(x, num_experts, top_k, hidden)``."""
        e, k, _ = self._check_elastic(num_experts, top_k, hidden)
        hidden = int(hidden)
        if self.expert_map is not None:
            raise MoEError(
                "sliced() is not defined for a layer whose experts were merged (expert_map set)"
            )
        new = MoE(self.dim, hidden, e, k, self.temperature, self.capacity_factor).to(
            device=self.router.weight.device, dtype=self.router.weight.dtype
        )
        with torch.no_grad():
            new.router.weight.copy_(self.router.weight[:e])
            for src, dst in zip(self.experts[:e], new.experts, strict=True):
                dst.fc1.weight.copy_(src.fc1.weight[:hidden])
                dst.fc1.bias.copy_(src.fc1.bias[:hidden])
                dst.fc2.weight.copy_(src.fc2.weight[:, :hidden])
                dst.fc2.bias.copy_(src.fc2.bias)
        return new
