"""Multi-objective architecture search that runs in the background and persists every result.

``Search`` is the entry point; strategies (``"random"``, ``"nsga2"``, ``"predictor"`` or any
Optuna sampler) propose archs; Pareto filtering and hypervolume come from moocore.
"""

from __future__ import annotations

from nasviz.search import _nsga2, _predictor, _random  # noqa: F401 - register the strategies
from nasviz.search._nsga2 import NSGA2Strategy, SamplerStrategy
from nasviz.search._pareto import (
    default_reference,
    hypervolume,
    hypervolume_trace,
    pareto_mask,
    pareto_rank,
)
from nasviz.search._predictor import PredictorStrategy
from nasviz.search._random import RandomStrategy
from nasviz.search._search import Search
from nasviz.search._strategy import (
    Proposal,
    SearchContext,
    Strategy,
    register_strategy,
    strategy_names,
)

__all__ = [
    "NSGA2Strategy",
    "PredictorStrategy",
    "Proposal",
    "RandomStrategy",
    "SamplerStrategy",
    "Search",
    "SearchContext",
    "Strategy",
    "default_reference",
    "hypervolume",
    "hypervolume_trace",
    "pareto_mask",
    "pareto_rank",
    "register_strategy",
    "strategy_names",
]
