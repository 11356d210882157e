"""Strategies driven by an Optuna sampler through ask/tell: NSGA-II, or any sampler instance."""

from __future__ import annotations

from typing import Any

import optuna

from nasviz.errors import ConfigError
from nasviz.search._storage import distributions
from nasviz.search._strategy import Proposal, Strategy, register_strategy

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


class NSGA2Strategy(SamplerStrategy):
    """Optuna's NSGA-II through ask/tell.

    Args:
        population_size: archs per generation.
        mutation_prob: probability of re-drawing each dimension of a child; None is Optuna's
            default (1 / number of dimensions).
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
        self._sampler = None  # built in bind, when the search's seed is known

    def bind(self, context) -> None:
        super().bind(context)
        self._sampler = optuna.samplers.NSGAIISampler(
            population_size=self.population_size,
            mutation_prob=self.mutation_prob,
            crossover_prob=self.crossover_prob,
            swapping_prob=self.swapping_prob,
            seed=self.seed if self.seed is not None else context.seed,
        )

    def settings(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "population_size": self.population_size,
            "mutation_prob": self.mutation_prob,
            "crossover_prob": self.crossover_prob,
            "swapping_prob": self.swapping_prob,
        }


register_strategy("nsga2", NSGA2Strategy)
