"""What a search strategy is, what it may rely on, and the registry of strategy names.

A :class:`Strategy` proposes architectures and learns from their results. The search engine
owns everything else: creating Optuna trials, deduplication, constraints that can be checked
before evaluating, the executor, persistence and events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import optuna

from nasviz.errors import ConfigError, check_options
from nasviz.objectives import Objective
from nasviz.runner import Event
from nasviz.space import Arch, SearchSpace

__all__ = [
    "Proposal",
    "SearchContext",
    "Strategy",
    "make_strategy",
    "register_strategy",
    "strategy_names",
]


@dataclass(frozen=True)
class Proposal:
    """An architecture to evaluate; ``trial`` is the Optuna trial already asked for it (sampler
    strategies) or None (the engine then records a trial itself)."""

    arch: Arch
    trial: optuna.Trial | None = None


@dataclass
class SearchContext:
    """What the engine gives a strategy when it binds it (read-only for the strategy).

    Attributes:
        space: the search space.
        objectives: the objectives, in column order.
        seed: the search's seed (None: not reproducible).
        rng: a generator seeded from ``seed``; the strategy's only source of randomness.
        study: the Optuna study (sampler strategies ask it for trials).
        is_known: True for an arch whose canonical form (see ``canonical``) was evaluated, is
            in flight or was already rejected: proposing it again is wasted (the engine drops
            it).
        is_feasible: checks the constraints that can be checked before evaluating (arch
            predicates and bounds on cheap objectives); may compute cheap objectives.
        cheap: exact values of the cheap objectives (``Objective.cheap``) of an arch, cached.
        bounds: objective name -> bound (``<=`` for minimized, ``>=`` for maximized objectives).
        history: the completed, evaluated archs and their objective values (an ``(n, m)``
            array in objective order), in trial order.
        random_unseen: up to ``n`` random feasible canonical archs not known yet, pairwise not
            equivalent (fewer near exhaustion).
        canonical: the representative of all archs that compute the same subnet (cached); the
            engine evaluates and stores only canonical archs. Identity when the search has no
            equivalences.
        equivalences: True when ``canonical`` may map an arch to another one (False: identity).
        cheap_names: the cheap objectives ``cheap`` computes (declared cheap objectives that
            could be computed on their own; one that could not was reported with a
            NasvizWarning when the search was built, and is measured with the evaluation).
        measure: ``measure(objective, arch)``: an Objective measured on the search's supernet
            (``objective(None, arch)`` for a function search), e.g. a zero-cost proxy.
    """

    space: SearchSpace
    objectives: list[Objective]
    seed: int | None
    rng: np.random.Generator
    study: optuna.Study
    is_known: Callable[[Arch], bool]
    is_feasible: Callable[[Arch], bool]
    cheap: Callable[[Arch], dict[str, float]]
    bounds: Mapping[str, float] = field(default_factory=dict)
    history: Callable[[], tuple[list[Arch], np.ndarray]] = lambda: ([], np.zeros((0, 0)))
    random_unseen: Callable[[int], list[Arch]] = lambda n: []
    canonical: Callable[[Arch], Arch] = lambda arch: arch
    equivalences: bool = False
    cheap_names: list[str] = field(default_factory=list)
    measure: Callable[[Objective, Arch], float] = lambda objective, arch: objective(None, arch)


class Strategy(ABC):
    """Proposes architectures to evaluate and learns from their results.

    Contract:
        * ``bind`` is called once, before anything else, by the search that owns the strategy;
          a strategy instance serves one search.
        * ``ask``, ``tell`` and ``sampler`` are called only from the search's run thread (never
          concurrently), so a strategy needs no locks.
        * ``ask(n)`` returns at most ``n`` proposals; fewer (even none) is allowed while results
          are outstanding, for strategies that plan in batches. A strategy should not propose
          archs for which ``context.is_known`` is True; the engine drops them if it does. The
          engine evaluates ``context.canonical(arch)`` in place of a proposed arch, and tells
          the strategy about that canonical arch.
        * ``tell`` is called once per evaluated arch, with the objective values (a dict by
          objective name) or None when the evaluation failed, broke a constraint or was stopped
          early. In a study shared by several searches it is also called for the archs the
          other searches evaluated, as their results arrive. It may return events (for
          example ``"cycle"``) that the search reports to listeners.
        * Randomness comes from ``context.rng`` (or the seed) only, so one worker and one seed
          give identical searches.
    """

    #: Name in the registry (``Search(strategy=name)``).
    name: ClassVar[str] = ""

    def bind(self, context: SearchContext) -> None:
        """Attaches the strategy to its search."""
        self.context = context

    def sampler(self) -> optuna.samplers.BaseSampler | None:
        """The Optuna sampler the study should use, or None when the strategy proposes archs
        itself (the study then records them without sampling)."""
        return None

    @abstractmethod
    def ask(self, n: int) -> list[Proposal]:
        """Up to ``n`` architectures to evaluate next."""

    def tell(self, arch: Arch, values: dict[str, float] | None) -> list[Event]:
        """Observes one finished evaluation; returns events to report (none by default)."""
        return []

    def settings(self) -> dict[str, Any]:
        """The strategy's settings, for the study's records (JSON scalars)."""
        return {"strategy": self.name}


_REGISTRY: dict[str, Callable[..., Strategy]] = {}


def register_strategy(name: str, factory: Callable[..., Strategy]) -> None:
    """Makes ``Search(strategy=name)`` build a strategy with ``factory(**options)``."""
    _REGISTRY[name] = factory


def strategy_names() -> list[str]:
    """The names ``Search(strategy=...)`` accepts."""
    return sorted(_REGISTRY)


def make_strategy(
    strategy: str | Strategy | optuna.samplers.BaseSampler, options: Mapping[str, Any]
) -> Strategy:
    """A Strategy from a registered name (with ``options``), a Strategy, or an Optuna sampler."""
    from nasviz.search._nsga2 import SamplerStrategy

    if isinstance(strategy, Strategy):
        if options:
            raise ConfigError(
                f"strategy_options are for strategy names; got an instance and {dict(options)}"
            )
        return strategy
    if isinstance(strategy, optuna.samplers.BaseSampler):
        if options:
            raise ConfigError(
                f"strategy_options are for strategy names; got a sampler and {dict(options)}"
            )
        return SamplerStrategy(strategy)
    if isinstance(strategy, str) and strategy in _REGISTRY:
        check_options(f"strategy {strategy!r}", options, [_REGISTRY[strategy]])
        try:
            return _REGISTRY[strategy](**options)
        except TypeError as exc:
            raise ConfigError(
                f"strategy {strategy!r}: bad strategy_options {dict(options)}: {exc}"
            ) from exc
    raise ConfigError(
        f"unknown strategy {strategy!r}; known strategies: {strategy_names()}, a nasviz Strategy "
        "instance, or an optuna sampler instance (e.g. optuna.samplers.TPESampler())"
    )
