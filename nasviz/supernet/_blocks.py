"""The block view of a supernet: the parts a latency table measures one by one.

A supernet is a chain of *blocks* (a CNN's stem, each inverted-residual block and its head; a
transformer's embedding, each layer and its head). Each block has a few *choices* (kernel and
expand ratio, heads and FFN width, ...) and runs or not depending on the arch. A subnet is the
chain of the blocks it runs, each with its choice, so per-block latencies measured once per
choice add up to a subnet's latency (ProxylessNAS / OFA latency tables).

The contract every supernet that implements the block view keeps (tested for the built-in
families):

* :meth:`~nasviz.supernet.Supernet.block_space` lists every block in forward order, with the
  dimensions of the space that decide whether it runs and which choice it takes (``dims``) and
  every choice some arch gives it (``choices``). Blocks every subnet runs unchanged (a stem, a
  head) have no dims and the single choice ``Arch()``.
* :meth:`~nasviz.supernet.Supernet.block_choices` gives, for one arch, ``(block name, choice)``
  for each block the subnet runs, in forward order; each choice is one of that block's
  ``choices`` and depends only on the arch's values of that block's ``dims``.
* :meth:`~nasviz.supernet.Supernet.export_block` returns a standalone module of plain torch
  layers computing one block with one choice; chaining the modules of ``block_choices(arch)``
  computes what ``export(arch)`` computes (with the supernet's own batch-norm statistics, not a
  subnet's re-calibrated ones: blocks are for timing).
* :meth:`~nasviz.supernet.Supernet.block_input_shape` is the shape of the tensor a block with
  a choice receives when the whole net receives ``input_shape``; everything a block's input
  shape depends on is in its choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from nasviz.space import Arch

__all__ = ["FIXED", "Block"]

#: The one choice of a block that every subnet runs unchanged.
FIXED = Arch()


@dataclass(frozen=True)
class Block:
    """One block of a supernet (see the module's contract).

    Attributes:
        name: unique within the supernet, e.g. ``"stage1.2"`` or ``"layer0"``.
        dims: names of the space's dimensions that decide whether the block runs and which
            choice it takes (empty for a block every subnet runs unchanged).
        choices: every choice some arch gives the block, each an :class:`~nasviz.Arch`
            (``FIXED``, the empty arch, for a fixed block).
    """

    name: str
    dims: tuple[str, ...]
    choices: tuple[Arch, ...]

    @property
    def fixed(self) -> bool:
        """True for a block every subnet runs with the same (single) choice."""
        return not self.dims
