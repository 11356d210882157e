"""NSGA-II (nasviz's own, the default strategy) and any Optuna sampler through ask/tell."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from nasviz.errors import ConfigError
from nasviz.runner import Event
from nasviz.search._evolution import breed, nsga2_order
from nasviz.search._storage import distributions
from nasviz.search._strategy import Proposal, SearchContext, Strategy, register_strategy
from nasviz.space import Arch

__all__ = ["NSGA2Strategy", "SamplerStrategy"]


class SamplerStrategy(Strategy):
    """Asks an Optuna sampler (TPE, GP, NSGA-II, ...) for each arch.

    Every proposal is a trial the sampler chose (``study.ask()``); the engine tells the study its
    result, so the sampler learns the usual Optuna way. Archs are stored as Optuna params with
    their real values (see :func:`nasviz.search._storage.distributions`).

    Args:
        sampler: the Optuna sampler instance; it becomes the study's sampler.
    """

    name = "sampler"

    def __init__(self, sampler: optuna.samplers.BaseSampler):
        if not isinstance(sampler, optuna.samplers.BaseSampler):
            raise ConfigError(f"expected an optuna sampler instance, got {type(sampler).__name__}")
        self._sampler = sampler

    def sampler(self) -> optuna.samplers.BaseSampler:
        return self._sampler

    def ask(self, n: int) -> list[Proposal]:
        space = self.context.space
        dists = distributions(space)
        out = []
        for _ in range(n):
            trial = self.context.study.ask(dists)
            arch = space.validate({name: trial.params[name] for name in space.names})
            out.append(Proposal(arch, trial))
        return out

    def settings(self) -> dict[str, Any]:
        return {"strategy": self.name, "sampler": type(self._sampler).__name__}


class NSGA2Strategy(Strategy):
    """NSGA-II, generational and elitist, on archs as index rows (its cost per proposal does
    not grow with the study, unlike Optuna's sampler, which scans every trial on each ask).

    The first generation is random (unseen, feasible archs). Each later one is bred from the
    parent population by binary tournaments on (constraint violation, non-dominated rank,
    crowding distance), uniform crossover and per-dimension mutation; children already
    evaluated (or equivalent to an evaluated arch) are redrawn, so duplicates are never
    proposed, let alone stored. Once ``population_size`` results arrived (this search's and,
    in a shared study, the other searches'), parents and results together are ranked and the
    best ``population_size`` become the next parents. A resumed search starts from the best
    of the study's results.

    Args:
        population_size: archs per generation.
        mutation_prob: probability of redrawing each dimension of a child; None: 1 / number of
            dimensions.
        crossover_prob: probability that a child comes from crossover (else it copies a parent).
        swapping_prob: per-dimension probability of taking the second parent's value.
        seed: overrides the search's seed (None: use the search's seed).
    """

    name = "nsga2"

    def __init__(
        self,
        population_size: int = 20,
        mutation_prob: float | None = None,
        crossover_prob: float = 0.9,
        swapping_prob: float = 0.5,
        seed: int | None = None,
    ):
        if not isinstance(population_size, int) or population_size < 2:
            raise ConfigError(
                f"nsga2: population_size must be an int >= 2, got {population_size!r}"
            )
        for label, p in (
            ("crossover_prob", crossover_prob),
            ("swapping_prob", swapping_prob),
            ("mutation_prob", mutation_prob),
        ):
            if p is not None and not 0.0 <= p <= 1.0:
                raise ConfigError(f"nsga2: {label} must be in [0, 1], got {p!r}")
        self.population_size = population_size
        self.mutation_prob = mutation_prob
        self.crossover_prob = crossover_prob
        self.swapping_prob = swapping_prob
        self.seed = seed

    def bind(self, context: SearchContext) -> None:
        super().bind(context)
        self._rng = context.rng if self.seed is None else np.random.default_rng(self.seed)
        self._sizes = np.array([len(v) for v in context.space.dims.values()])
        self._queue: list[Arch] = []
        self._pool: list[tuple[Arch, list[float]]] = []  # this generation's results
        self._parents: list[tuple[Arch, list[float]]] = []
        archs, values = context.history()
        if len(archs):
            self._pool = list(zip(archs, values.tolist(), strict=True))
            self._select()

    def ask(self, n: int) -> list[Proposal]:
        out: list[Proposal] = []
        taken: set[Arch] = set()
        for _ in range(4):  # a few generations at most, should every child be known
            while self._queue and len(out) < n:
                arch = self._queue.pop(0)
                if arch not in taken and not self.context.is_known(arch):
                    out.append(Proposal(arch))
                    taken.add(arch)
            if len(out) == n:
                break
            self._breed()
        return out

    def tell(self, arch: Arch, values: dict[str, float] | None) -> list[Event]:
        if values is not None:
            self._pool.append((arch, [values[o.name] for o in self.context.objectives]))
            if len(self._pool) >= self.population_size:
                self._select()
        return []

    def _select(self) -> None:
        """The best ``population_size`` of parents and new results become the parents."""
        merged = {a: v for a, v in self._parents + self._pool}  # a re-told arch counts once
        archs = list(merged)
        F = np.array([merged[a] for a in archs], dtype=np.float64)  # (n, m)
        keep = nsga2_order(F, self.context.objectives, self.context.bounds)
        self._parents = [(archs[i], merged[archs[i]]) for i in keep[: self.population_size]]
        self._pool = []

    def _breed(self) -> None:
        """Queues the next generation: children of the parents (random archs at first)."""
        P = self.population_size
        if len(self._parents) < 2:
            self._queue = self.context.random_unseen(P)
            return
        space = self.context.space
        pop = np.array([space.index_of(a) for a, _ in self._parents])  # (p, d), best first
        position = np.arange(len(pop))
        rows = breed(
            pop,
            position,
            self._sizes,
            self._rng,
            P,
            self.crossover_prob,
            self.swapping_prob,
            self.mutation_prob,
        )
        children = dict.fromkeys(
            self.context.canonical(space.from_indices(row)) for row in rows.tolist()
        )
        fresh = [
            a for a in children if not self.context.is_known(a) and self.context.is_feasible(a)
        ]
        if len(fresh) < P // 2:  # a converged population: explore instead
            fresh += [a for a in self.context.random_unseen(P - len(fresh)) if a not in fresh]
        self._queue = fresh

    def settings(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "population_size": self.population_size,
            "mutation_prob": self.mutation_prob,
            "crossover_prob": self.crossover_prob,
            "swapping_prob": self.swapping_prob,
        }


register_strategy("nsga2", NSGA2Strategy)
