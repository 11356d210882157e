"""Bit-widths as search dimensions (SimQ-NAS): one dimension per layer or per block.

``quant_space(net, bits=(4, 8, 16))`` gives a :class:`QuantSpace`, a :class:`~nasviz.SearchSpace`
whose dimensions are named ``bits.<layer>`` (or ``bits.<block>``) and which remembers the layers
each dimension covers. ``net.space | qspace`` is the joint space; :class:`~nasviz.quant.QuantSupernet`
is what a :class:`~nasviz.search.Search` evaluates on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import nn

from nasviz.errors import ConfigError, SpaceError
from nasviz.quant._qtensor import check_bits
from nasviz.quant._targets import find_targets, select
from nasviz.space import SearchSpace

__all__ = ["GRANULARITIES", "QuantSpace", "quant_space"]

GRANULARITIES = ("layer", "block")
PREFIX = "bits."


class QuantSpace(SearchSpace):
    """A search space of bit-widths that knows which layers each dimension sets.

    Args:
        dims: ``bits.<name>`` -> allowed bit-widths.
        layers: dimension -> the layer names it sets (names as :func:`nasviz.quant.describe`
            lists them).
        granularity: ``"layer"`` or ``"block"``.
    """

    def __init__(
        self,
        dims: Mapping[str, Sequence[int]],
        layers: Mapping[str, Sequence[str]],
        granularity: str = "layer",
    ) -> None:
        super().__init__(dims)
        if set(layers) != set(self.names):
            raise SpaceError(
                f"layers must name the layers of every dimension; dimensions {list(self.names)}, "
                f"got {list(layers)}"
            )
        self.layers = {d: tuple(layers[d]) for d in self.names}
        self.granularity = granularity

    def bits_of(self, arch: Mapping[str, Any]) -> dict[str, int]:
        """Layer -> bits for ``arch`` (a bits-only or a joint arch; other dimensions are ignored).

        Raises:
            SpaceError: ``arch`` lacks a bits dimension or has a value it does not allow.
        """
        own = self.validate({d: arch[d] for d in self.names if d in arch})
        return {layer: int(own[d]) for d in self.names for layer in self.layers[d]}

    def __repr__(self) -> str:
        return (
            f"QuantSpace({len(self.names)} {self.granularity} dimensions, bits "
            f"{list(self.dims[self.names[0]])}, {len(self)} archs)"
        )


def quant_space(
    model_or_supernet: nn.Module,
    *,
    bits: Sequence[int] = (4, 8, 16),
    granularity: str = "layer",
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
) -> QuantSpace:
    """Bit-width dimensions for the quantizable layers of a model or a supernet.

    Args:
        model_or_supernet: a plain model or a supernet (its largest layers are named).
        bits: allowed bit-widths (2, 3, 4, 8, 16 = half, 32 = unchanged).
        granularity: ``"layer"`` (one dimension per weight) or ``"block"`` (one per transformer
            block, inverted-residual block, ...; see :mod:`nasviz.quant._targets`).
        include, exclude: layer names or glob patterns.

    Raises:
        ConfigError: an unsupported bit-width or granularity, or a pattern matching no layer.
    """
    if isinstance(bits, str | bytes) or not isinstance(bits, Sequence) or not bits:
        raise ConfigError(f"bits must be a non-empty sequence of bit-widths, got {bits!r}")
    widths = sorted({check_bits(b, "bits") for b in bits})
    if granularity not in GRANULARITIES:
        raise ConfigError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    targets = select(find_targets(model_or_supernet), include, exclude)
    if not targets:
        raise ConfigError(f"{type(model_or_supernet).__name__} has no quantizable layers")
    groups: dict[str, list[str]] = {}
    for t in targets.values():
        groups.setdefault(PREFIX + (t.name if granularity == "layer" else t.block), []).append(
            t.name
        )
    return QuantSpace(dict.fromkeys(groups, widths), groups, granularity)
