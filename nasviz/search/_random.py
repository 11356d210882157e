"""Random search: uniform, feasible, never repeating an arch — the honest baseline."""

from __future__ import annotations

from nasviz.search._strategy import Proposal, Strategy, register_strategy

__all__ = ["RandomStrategy"]


class RandomStrategy(Strategy):
    """Draws archs uniformly at random among those not evaluated yet (rejection sampling on the
    constraints). Reproducible through the search's seed."""

    name = "random"

    def ask(self, n: int) -> list[Proposal]:
        return [Proposal(arch) for arch in self.context.random_unseen(n)]


register_strategy("random", RandomStrategy)
