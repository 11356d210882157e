"""Prepared weights: the tensors one subnet's elastic layers read, made once per arch and reused
by every forward that records no autograd graph.

Slicing a parameter costs microseconds of Python per call, and a slice that is not contiguous
(the centre crop of a depthwise kernel, the first input columns of a projection) is copied by
the convolution or matmul backend on every call. Training needs both per call (gradients flow
through the slices), evaluation does not: a subnet evaluated in eval mode without autograd
reads a :class:`Prepared` store instead, filled by the arch's first such forward with each
layer's slices made contiguous (views stay views; kernels through learned transforms are
computed once).

Staleness: every tensor a prepared item was made from is recorded with its owner (the module's
``_parameters``/``_buffers`` dict), its data pointer and its version counter. One check per
forward (:meth:`Prepared.valid`) compares them all; any change (an optimizer step, a
``load_state_dict``, ``reorder_channels``, ``.to()``, a parametrization added or its mask
changed) makes the store stale, and the supernet then drops every stored arch at once (freeing
old storage). A prepared item keeps the storage it was made from alive, so an address cannot
be reused by new weights while the item exists. Edits made through ``param.data`` bypass
version counters: call the supernet's ``clear_prepared()`` after them.

Threads: any number of threads may read and fill stores at once. Items and records are only
ever added (never changed), and two threads missing the same item store equal values; the
cache replaces its dict instead of mutating entries readers may hold.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

import torch
from torch import nn

__all__ = ["Prepared", "PreparedCache"]


class Prepared:
    """Prepared tensors of one subnet, by ``(layer, *sizes)``.

    A layer that can be prepared has ``slices(*sizes, *extra) -> tuple`` returning the tensors
    its forward reads (views of its weights, or tensors computed from them).

    Attributes:
        context: what besides the weights the items depend on (a supernet's re-calibrated BN
            statistics of the arch), held so its identity stays unique.
    """

    __slots__ = ("_items", "_layers", "_records", "context")

    def __init__(self, context: Any = None) -> None:
        self.context = context
        self._items: dict[tuple, tuple] = {}
        self._layers: set[int] = set()
        # (owner dict, name, tensor, alias keeping its storage alive, data_ptr, version)
        self._records: list[tuple[dict, str, torch.Tensor, torch.Tensor, int, int]] = []

    def get(self, key: tuple[Any, ...], *extra: Any) -> tuple:
        """The prepared ``key[0].slices(*key[1:], *extra)``, made (contiguous, without autograd)
        on a miss. ``extra`` must follow from the key and :attr:`context` (it is not compared)."""
        item = self._items.get(key)
        if item is None:
            item = self._make(key, extra)
        return item

    def _make(self, key: tuple[Any, ...], extra: tuple) -> tuple:
        layer: nn.Module = key[0]
        if id(layer) not in self._layers:  # record before reading: a change after is caught
            self._layers.add(id(layer))
            self._records.extend(_records(layer))
        with torch.no_grad():
            item = tuple(
                None if t is None else t.contiguous() for t in layer.slices(*key[1:], *extra)
            )
        self._items[key] = item
        return item

    def valid(self) -> bool:
        """Whether every tensor the items were made from is unchanged (same tensor object in
        its module, same storage, same version)."""
        for owner, name, tensor, _alias, ptr, version in self._records:
            if owner.get(name) is not tensor or tensor._version != version:
                return False
            if tensor.data_ptr() != ptr:
                return False
        return True

    def __len__(self) -> int:
        return len(self._items)


def _records(layer: nn.Module) -> list[tuple[dict, str, torch.Tensor, torch.Tensor, int, int]]:
    records = []
    for module in layer.modules():
        for owner in (module._parameters, module._buffers):
            for name, tensor in owner.items():
                if tensor is not None:
                    alias = tensor.detach()
                    records.append((owner, name, tensor, alias, tensor.data_ptr(), tensor._version))
    return records


class PreparedCache:
    """arch -> :class:`Prepared` for one supernet, holding at most ``capacity`` archs (the
    oldest is dropped first); all of them are dropped as soon as one is found stale."""

    capacity = 32

    def __init__(self) -> None:
        self._entries: dict[Hashable, Prepared] = {}
        self._lock = threading.Lock()

    def get(self, arch: Hashable, context: Any = None) -> Prepared:
        """The arch's store for ``context``: the cached one while valid, else a new, empty one."""
        entry = self._entries.get(arch)
        if entry is not None and entry.context is context and entry.valid():
            return entry
        with self._lock:
            entries = self._entries
            current = entries.get(arch)
            if current is not None and current.valid():
                if current.context is context:
                    return current  # another thread made it meanwhile
                del entries[arch]  # same weights, other statistics
            elif current is not None:  # the weights changed: every stored arch is stale
                entries = self._entries = {}
            while len(entries) >= self.capacity:
                entries.pop(next(iter(entries)))
            entry = entries[arch] = Prepared(context)
            return entry

    def clear(self) -> None:
        """Drops every stored arch."""
        with self._lock:
            self._entries = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __deepcopy__(self, memo: dict) -> PreparedCache:
        return PreparedCache()  # a copy's stores are made from its own weights on first use

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
