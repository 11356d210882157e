"""Multi-objective architecture search that runs in the background and persists every result.

``Search`` is the entry point; strategies (``"random"``, ``"nsga2"``, ``"predictor"`` or any
Optuna sampler) propose archs; Pareto filtering and hypervolume come from moocore. Any number
of processes and machines may share one study (``nasviz worker``); functions that report
intermediate values can be stopped early (``SuccessiveHalving``, ``Hyperband``); zero-cost
proxies (``synflow``, ``grad_norm``, ``naswot``) are cheap objectives and predictor features.
"""

from __future__ import annotations

from nasviz.search import _nsga2, _predictor, _random  # noqa: F401 - register the strategies
from nasviz.search._fidelity import Hyperband, Pruned, Scheduler, SuccessiveHalving
from nasviz.search._nsga2 import NSGA2Strategy, SamplerStrategy
from nasviz.search._pareto import (
    default_reference,
    hypervolume,
    hypervolume_trace,
    pareto_mask,
    pareto_rank,
)
from nasviz.search._predictor import PredictorStrategy
from nasviz.search._proxies import grad_norm, naswot, synflow
from nasviz.search._random import RandomStrategy
from nasviz.search._search import Search
from nasviz.search._storage import RESULT_COLUMNS
from nasviz.search._strategy import (
    Proposal,
    SearchContext,
    Strategy,
    register_strategy,
    strategy_names,
)

__all__ = [
    "RESULT_COLUMNS",
    "Hyperband",
    "NSGA2Strategy",
    "PredictorStrategy",
    "Proposal",
    "Pruned",
    "RandomStrategy",
    "SamplerStrategy",
    "Scheduler",
    "Search",
    "SearchContext",
    "Strategy",
    "SuccessiveHalving",
    "default_reference",
    "grad_norm",
    "hypervolume",
    "hypervolume_trace",
    "naswot",
    "pareto_mask",
    "pareto_rank",
    "register_strategy",
    "strategy_names",
    "synflow",
]
