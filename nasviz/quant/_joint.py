"""``QuantSupernet``: architecture and bit-widths searched together (SimQ-NAS).

A :class:`QuantSupernet` wraps a supernet (or a plain model) and a :class:`QuantSpace` and
follows the supernet protocol over the joint space ``net.space | qspace``: ``subnet(arch)``,
``export(arch)``, ``canonical(arch)``, ``count_params``, ``count_macs`` and ``count_bytes``, so a
:class:`~nasviz.search.Search` proposes architecture and bits at once and every built-in
objective measures the quantized subnet.

How a joint arch computes: the supernet exports the architecture part (plain torch layers),
each exported layer is matched to the supernet layer it was sliced from, and the export is
weight-quantized with the bits of those layers' dimensions (:func:`nasviz.quant.quantize`,
simulated kernels). ``with qnet.subnet(arch): qnet(x)`` runs exactly that quantized export, so
its outputs equal ``qnet.export(arch)``'s. Quantized exports are made once per arch and kept
(an LRU of 32), and dropped when the supernet's weights change.

Matching exported layers to supernet layers: in module order, each exported Linear/Conv layer
goes to the first later supernet layer of the same kind whose weight it is a slice of (leading
rows and columns, centre crop of kernels), or, when none holds its values (a kernel computed
through learned transforms), to the first later one of the same kind it fits in.

Canonical archs without exports: ``canonical`` needs only which supernet layers a subnet uses.
For a supernet with a block view (:mod:`nasviz.supernet._blocks`) that is the union, over the
blocks the subnet runs, of the layers each block's choice uses: each block's export is aligned
once per choice (to the layers its largest choice holds by value), so a search's inner loop
canonicalizes thousands of archs without exporting any. The block path is checked once against
whole exports (the largest and the smallest subnet); a net it does not describe exactly, or
without a block view, is canonicalized through exports.

Threads: like the built-in supernets, the active arch is per thread (a context variable) and
any number of threads may evaluate at once; caches are thread-safe. Nothing may train the
wrapped net while the wrapper is evaluated.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
from torch import nn

from nasviz.errors import ConfigError, SpaceError
from nasviz.objectives import count_macs, count_params
from nasviz.quant._bytes import count_bytes
from nasviz.quant._ptq import (
    _copy,
    apply_weight_quantization,
    is_quantized,
    quantize,
    symmetric_for,
)
from nasviz.quant._qtensor import quantized_bytes
from nasviz.quant._space import QuantSpace
from nasviz.quant._targets import Target, find_targets
from nasviz.space import Arch, SearchSpace
from nasviz.supernet._base import _ArchCache

__all__ = ["QuantSupernet", "align_layers"]

_ACTIVE: ContextVar[Mapping[int, Arch]] = ContextVar(
    "nasviz_active_quant_archs", default=MappingProxyType({})
)


def _weight(t: Target) -> torch.Tensor:
    from torch.nn.utils import parametrize

    w = (
        t.module.parametrizations[t.attr].original
        if parametrize.is_parametrized(t.module, t.attr)
        else getattr(t.module, t.attr)
    )
    return w if t.expert is None else w[t.expert]


def _fits(big: Target, small: Target) -> bool:
    return (
        big.kind == small.kind
        and len(big.shape) == len(small.shape)
        and all(s <= b for s, b in zip(small.shape, big.shape, strict=True))
    )


def _holds(big: torch.Tensor, small: torch.Tensor) -> bool:
    """Whether ``small`` is the leading-rows/columns, centre-cropped slice of ``big``."""
    index = [slice(0, small.shape[0])]
    if small.dim() > 1:
        index.append(slice(0, small.shape[1]))
    for d in range(2, small.dim()):
        start = (big.shape[d] - small.shape[d]) // 2
        index.append(slice(start, start + small.shape[d]))
    return torch.equal(big[tuple(index)], small)


def align_layers(
    net_targets: Mapping[str, Target], export_targets: Mapping[str, Target]
) -> dict[str, str]:
    """Exported layer -> the supernet layer it comes from (see the module docstring).

    Raises:
        ConfigError: an exported layer fits no later supernet layer.
    """
    sup = list(net_targets.values())
    out: dict[str, str] = {}
    start = 0
    for e in export_targets.values():
        candidates = [j for j in range(start, len(sup)) if _fits(sup[j], e)]
        if not candidates:
            raise ConfigError(
                f"exported layer {e.name!r} ({e.kind} {e.shape}) matches no supernet layer after "
                f"{sup[start - 1].name if start else 'the start'}; the export's layers must be "
                "slices of the supernet's, in module order"
            )
        w = _weight(e)
        j = next((j for j in candidates if _holds(_weight(sup[j]), w)), candidates[0])
        out[e.name] = sup[j].name
        start = j + 1
    return out


class _Layout(NamedTuple):
    """One architecture's float export and how its layers map to the net's."""

    export: nn.Module
    source: dict[str, str]  # exported layer -> net layer
    float_bytes: int
    weights: dict[str, tuple[int, int, int]]  # exported layer -> (values, channels, float size)


def _weights(targets: Mapping[str, Target]) -> dict[str, tuple[int, int, int]]:
    out = {}
    for name, t in targets.items():
        w = _weight(t)
        channels = w.numel()
        for d in t.reduce:
            channels //= w.shape[d]
        out[name] = (w.numel(), channels, w.element_size())
    return out


class QuantSupernet(nn.Module):
    """A supernet (or plain model) whose archs also choose per-layer bit-widths.

    Args:
        net: a supernet (``space``, ``subnet``, ``export``) or a plain ``nn.Module`` (then the
            space is ``qspace`` alone and every arch quantizes the model itself).
        qspace: bit-width dimensions from :func:`nasviz.quant.quant_space` of ``net``.
        mode: ``"weight"`` (weight-only codes of any width, simulated kernels) or
            ``"dynamic"`` (layers at 8 bits run real dynamic int8 kernels, layers at 32 stay
            float: a latency objective then measures real speed; ``qspace`` may only offer
            8 and 32 bits, on Linear layers).
        symmetric: as in :func:`nasviz.quant.quantize` (weight mode).

    Raises:
        SpaceError: ``qspace`` names a layer ``net`` does not have, or its dimension names
            collide with the supernet's.
        ConfigError: ``net`` is already quantized, or ``mode`` does not fit ``qspace``.
    """

    def __init__(
        self,
        net: nn.Module,
        qspace: QuantSpace,
        *,
        mode: str = "weight",
        symmetric: bool | None = None,
    ):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise ConfigError(f"QuantSupernet wraps an nn.Module, got {type(net).__name__}")
        if not isinstance(qspace, QuantSpace):
            raise ConfigError(
                f"qspace must come from nasviz.quant.quant_space(...), got {type(qspace).__name__}"
            )
        if is_quantized(net):
            raise ConfigError(
                "QuantSupernet needs a full-precision net; this one is already quantized"
            )
        self._supernet = all(hasattr(net, a) for a in ("space", "subnet", "export"))
        self._targets = find_targets(net)
        missing = {
            d: layer
            for d, layers in qspace.layers.items()
            for layer in layers
            if layer not in self._targets
        }
        if missing:
            d, layer = next(iter(missing.items()))
            raise SpaceError(
                f"bits dimension {d!r} sets layer {layer!r}, which {type(net).__name__} does not "
                f"have ({len(missing)} such dimension(s)); build qspace with quant_space(net)"
            )
        if mode not in ("weight", "dynamic"):
            raise ConfigError(f"mode must be 'weight' or 'dynamic', got {mode!r}")
        if mode == "dynamic":
            widths = {b for values in qspace.dims.values() for b in values}
            kinds = {
                self._targets[layer].kind for layers in qspace.layers.values() for layer in layers
            }
            if not widths <= {8, 32} or not kinds <= {"Linear", "Conv1D"}:
                raise ConfigError(
                    "mode='dynamic' runs int8 Linear layers: build qspace with bits=(8, 32) and "
                    f"include only Linear layers (got bits {sorted(widths)} on {sorted(kinds)})"
                )
        self.net = net
        self.qspace = qspace
        self.mode = mode
        self.symmetric = symmetric
        self.space = SearchSpace.join(net.space, qspace) if self._supernet else SearchSpace(qspace)
        self._net_names = tuple(net.space.names) if self._supernet else ()
        self._layer_dim = {layer: d for d, layers in qspace.layers.items() for layer in layers}
        self._exports = _ArchCache(32)
        self._layouts = _ArchCache(64)
        self._stamp: tuple | None = None
        self._block_layers: dict[tuple[str, Arch], frozenset[str]] = {}
        self._block_own: dict[str, list[str]] = {}  # block -> layers its largest choice holds
        self._by_blocks: bool | None = None  # whether _used may go through the block view
        self._lock = threading.Lock()

    @property
    def family(self) -> str:
        return f"Quant{getattr(self.net, 'family', type(self.net).__name__)}"

    # ---- archs ---------------------------------------------------------------------------
    def largest(self) -> Arch:
        return self.space.largest()

    def smallest(self) -> Arch:
        return self.space.smallest()

    def sample(self, rng: Any = None, n: int | None = None) -> Arch | list[Arch]:
        return self.space.sample(rng, n)

    def _net_arch(self, arch: Arch) -> Arch | None:
        if not self._supernet:
            return None
        return Arch((k, arch[k]) for k in self._net_names)

    def canonical(self, arch: Mapping[str, Any]) -> Arch:
        """The representative arch: the supernet's canonical architecture part, and the bits of
        layers the subnet does not use set to the smallest bit-width.

        Raises:
            SpaceError: ``arch`` is not in :attr:`space`.
        """
        arch = self.space.validate(arch)
        net_arch = self._net_arch(arch)
        if net_arch is not None and hasattr(self.net, "canonical"):
            net_arch = self.net.canonical(net_arch)
        used = self._used(net_arch)
        changes = dict(net_arch or {})
        for d, layers in self.qspace.layers.items():
            if not used.intersection(layers):
                changes[d] = self.space.dims[d][0]
        return arch.replace(**changes)

    def bits_of(self, arch: Mapping[str, Any]) -> dict[str, int]:
        """Exported layer -> bits for ``arch`` (32 for layers no dimension sets)."""
        arch = self.space.validate(arch)
        layout = self._layout(self._net_arch(arch))
        bits = self.qspace.bits_of(arch)
        return {e: bits.get(src, 32) for e, src in layout.source.items()}

    # ---- caches ----------------------------------------------------------------------------
    def _check_stamp(self) -> None:
        """Drops cached exports when the net's weights (or calibration inputs) changed."""
        state = self.net.state_dict(keep_vars=True).values()
        stamp = tuple((id(t), t.data_ptr(), t._version) for t in state if torch.is_tensor(t))
        stamp += (id(getattr(self.net, "calibration_inputs", None)),)
        if stamp != self._stamp:
            self._exports.clear()
            self._layouts.clear()
            self._stamp = stamp

    def _layout(self, net_arch: Arch | None) -> _Layout:
        key = net_arch if net_arch is not None else Arch()
        layout = self._layouts.get(key)
        if layout is None:
            if net_arch is None:
                export, source = self.net, {n: n for n in self._targets}
                targets = self._targets
            else:
                export = self.net.export(net_arch)
                targets = find_targets(export)
                source = align_layers(self._targets, targets)
            layout = _Layout(export, source, count_bytes(export), _weights(targets))
            self._layouts.put(key, layout)
        return layout

    def _used(self, net_arch: Arch | None) -> frozenset[str]:
        """The supernet layers the subnet of ``net_arch`` uses (see the module docstring)."""
        if net_arch is not None and self._blocks_describe_net():
            return self._used_by_blocks(net_arch)
        return self._used_exported(net_arch)

    def _blocks_describe_net(self) -> bool:
        with self._lock:
            if self._by_blocks is None:
                self._by_blocks = False  # stays so when the view is missing, fails or differs
                if all(
                    hasattr(self.net, a) for a in ("block_space", "block_choices", "export_block")
                ):
                    with contextlib.suppress(ConfigError, KeyError, ValueError):
                        probes = (self.net.largest(), self.net.smallest())
                        self._by_blocks = all(
                            self._used_by_blocks(a) == self._used_exported(a) for a in probes
                        )
            return self._by_blocks

    def _used_exported(self, net_arch: Arch | None) -> frozenset[str]:
        return frozenset(self._layout(net_arch).source.values())

    def _used_by_blocks(self, net_arch: Arch) -> frozenset[str]:
        used: set[str] = set()
        for name, choice in self.net.block_choices(net_arch):
            layers = self._block_layers.get((name, choice))
            if layers is None:
                layers = self._block_layers[(name, choice)] = self._align_block(name, choice)
            used |= layers
        return frozenset(used)

    def _align_block(self, name: str, choice: Arch) -> frozenset[str]:
        """The supernet layers block ``name`` uses with ``choice``: its export aligned to the
        layers its largest choice's export holds by value (ConfigError when one is ambiguous)."""
        own = self._block_own.get(name)
        if own is None:
            largest = dict(self.net.block_choices(self.net.largest()))[name]
            own = []
            for t in find_targets(self.net.export_block(name, largest)).values():
                w = _weight(t)
                holders = [
                    n
                    for n, big in self._targets.items()
                    if _fits(big, t) and _holds(_weight(big), w)
                ]
                if len(holders) != 1:
                    raise ConfigError(f"block {name!r}: layer {t.name!r} held by {holders}")
                own.append(holders[0])
            self._block_own[name] = own
        block_targets = {n: self._targets[n] for n in own}
        return frozenset(
            align_layers(block_targets, find_targets(self.net.export_block(name, choice))).values()
        )

    def _quantized(self, arch: Arch) -> nn.Module:
        self._check_stamp()
        model = self._exports.get(arch)
        if model is None:
            layout = self._layout(self._net_arch(arch))
            plan = self.bits_of(arch)
            if self.mode == "dynamic":
                eight = {layer: 8 for layer, b in plan.items() if b == 8}
                model = (
                    quantize(layout.export, eight, mode="dynamic")
                    if eight
                    else _copy(layout.export)
                )
            else:
                model = apply_weight_quantization(_copy(layout.export), plan, self.symmetric)
            model.eval()
            self._exports.put(arch, model)
        return model

    def clear(self) -> None:
        """Forgets every cached export (needed only after editing weights through ``.data``)."""
        self._exports.clear()
        self._layouts.clear()
        with self._lock:
            self._block_layers.clear()
            self._block_own.clear()
            self._by_blocks = None

    # ---- the protocol ------------------------------------------------------------------------
    @contextlib.contextmanager
    def subnet(self, arch: Mapping[str, Any]) -> Iterator[Arch]:
        """Activates ``arch`` (architecture and bits) for forward passes in this thread only.

        Raises:
            SpaceError: ``arch`` is not in :attr:`space`.
        """
        arch = self.space.validate(arch)
        token = _ACTIVE.set(MappingProxyType({**_ACTIVE.get(), id(self): arch}))
        try:
            yield arch
        finally:
            _ACTIVE.reset(token)

    @property
    def active_arch(self) -> Arch:
        """The joint arch ``forward`` computes in the calling thread (the largest when none)."""
        return _ACTIVE.get().get(id(self)) or self.space.largest()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The active arch's quantized export applied to the inputs (eval mode computation)."""
        return self._quantized(self.active_arch)(*args, **kwargs)

    def export(self, arch: Mapping[str, Any]) -> nn.Module:
        """A standalone quantized copy of ``arch``'s subnet; its outputs equal
        ``with self.subnet(arch): self(x)``. Its ``arch`` attribute is the joint arch."""
        arch = self.space.validate(arch)
        static = _copy(self._quantized(arch))
        static.arch = arch
        static.family = self.family
        return static.eval()

    def count_params(self, arch: Mapping[str, Any]) -> int:
        """Parameters of ``arch``'s subnet before quantization (bits do not change the count)."""
        arch = self.space.validate(arch)
        net_arch = self._net_arch(arch)
        if net_arch is not None and hasattr(self.net, "count_params"):
            return int(self.net.count_params(net_arch))
        return count_params(self._layout(net_arch).export)

    def count_macs(self, arch: Mapping[str, Any], input_shape: Sequence[int]) -> int:
        """Multiply-accumulates of ``arch``'s subnet (bits do not change the count)."""
        arch = self.space.validate(arch)
        net_arch = self._net_arch(arch)
        if net_arch is not None and hasattr(self.net, "count_macs"):
            return int(self.net.count_macs(net_arch, input_shape))
        return count_macs(self._layout(net_arch).export, tuple(input_shape))

    def count_bytes(self, arch: Mapping[str, Any]) -> int:
        """Exact bytes of ``export(arch)`` (as :func:`nasviz.quant.count_bytes` counts them),
        in closed form in weight mode (the float export's bytes with each quantized weight's
        bytes replaced), by counting the quantized export in dynamic mode."""
        arch = self.space.validate(arch)
        if self.mode == "dynamic":
            return count_bytes(self._quantized(arch))
        layout = self._layout(self._net_arch(arch))
        total = layout.float_bytes
        for layer, bits in self.bits_of(arch).items():
            numel, channels, size = layout.weights[layer]
            if bits != 32:
                sym = symmetric_for(bits, self.symmetric)
                total += quantized_bytes(numel, channels, bits, sym, size) - numel * size
        return total

    def extra_repr(self) -> str:
        return f"joint dimensions={len(self.space.names)}, bits dimensions={len(self.qspace.names)}"
