"""Lottery tickets: iterative magnitude pruning with weight rewinding.

Round 0 trains the dense model. Each following round prunes the same fraction ``p`` of the
weights still alive (by magnitude), rewinds the survivors to the rewind weights (the initial
ones, or an early checkpoint) and trains again, so that round R of R reaches ``sparsity``:
round r has sparsity ``1 - (1 - sparsity) ** (r / R)`` (``p = 1 - (1 - sparsity) ** (1 / R)``).
Every round's masks are kept for comparison (``a.overlap(b)``, the viewer's diff mode).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from nasviz._compat import REMOVED_IN, keyword_only_after
from nasviz.errors import ConfigError
from nasviz.prune._magnitude import SCOPES, magnitude
from nasviz.prune._masks import Masks, applied, check_sparsity, copy_model, prunable, remove

__all__ = ["LotteryResult", "lottery"]


@dataclass
class LotteryResult:
    """Every round of a lottery-ticket run.

    Attributes:
        masks: masks of rounds 1..R (round r keeps ``(1 - sparsity) ** (r / R)`` of the weights).
        metrics: what ``train_fn`` returned in rounds 0..R (round 0 is dense).
        model: the model, trained with the last round's masks applied.
    """

    masks: list[Masks]
    metrics: list[Any]
    model: nn.Module
    sparsities: list[float] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per round: sparsity, metric, and overlap of its pruning with the round before."""
        rows = []
        for r, metric in enumerate(self.metrics):
            overlap = self.masks[r - 1].overlap(self.masks[r - 2]) if r >= 2 else None
            rows.append(
                {
                    "round": r,
                    "sparsity": self.sparsities[r],
                    "metric": metric,
                    "overlap_with_previous": overlap,
                }
            )
        return pd.DataFrame(rows)


@keyword_only_after("rate", "rewind", "scope")
def lottery(
    model: nn.Module,
    train_fn: Any,
    rounds: int,
    *,
    sparsity: float | None = None,
    rewind: str | Mapping[str, torch.Tensor] | None = "init",
    scope: str = "global",
    train_options: Mapping[str, Any] | None = None,
    val: Any = None,
    rate: float | None = None,
) -> LotteryResult:
    """Runs iterative magnitude pruning with rewinding on ``model`` (changed in place).

    Arguments are checked before anything changes, and when a round's training fails, the
    model's weights and masks are put back as they were before the call, then the error
    propagates.

    Args:
        train_fn: the data to train on, in any form :func:`nasviz.data.as_batches` takes
            (each round then trains with :func:`nasviz.training.train` and
            ``train_options``), or your own ``train_fn(model)`` that trains in place (masks are
            applied, so pruned weights stay zero) and may return a metric (accuracy, loss)
            recorded per round.
        train_options: with data: :func:`~nasviz.training.train`'s options for every round
            (``epochs``, ``steps``, ``lr``, ``device``, ...; default one epoch).
        val: with data: what each round's metric is measured on (the task's default metric:
            accuracy for classification); None records the round's last training loss.
        rounds: R pruning rounds (``train_fn`` runs R + 1 times).
        sparsity: the sparsity the last round reaches, in (0, 1); None: ``1 - 0.8 ** R`` (20%
            of the remaining weights per round, as Frankle & Carbin).
        rate: deprecated (the fraction of the remaining weights pruned per round; rate r over
            R rounds is ``sparsity = 1 - (1 - r) ** R``).
        rewind: ``"init"`` (the weights at the call), a state dict (e.g. saved after a few
            training steps: late rewinding), or None (no rewinding: plain iterative pruning).
        scope: ``"global"`` or ``"layer"`` magnitude ranking.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"rounds must be an int >= 1, got {rounds!r}")
    if rate is not None:
        if sparsity is not None:
            raise ConfigError("give sparsity= (the final sparsity), not also rate= (per round)")
        warnings.warn(
            f"lottery: rate= (per round) is now sparsity= (the final sparsity: rate r over R "
            f"rounds is 1 - (1 - r) ** R); rate= stops working in nasviz {REMOVED_IN}",
            FutureWarning,
            stacklevel=2,
        )
        per_round = check_sparsity(rate, "rate")
        sparsity = 1.0 - (1.0 - per_round) ** rounds
    elif sparsity is None:
        sparsity = 1.0 - 0.8**rounds
    sparsity = check_sparsity(sparsity)
    if sparsity == 0.0:
        raise ConfigError("sparsity must be > 0: the last round prunes that fraction")
    rate = 1.0 - (1.0 - sparsity) ** (1.0 / rounds)
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {SCOPES}, got {scope!r}")
    if callable(train_fn) and not isinstance(train_fn, nn.Module):
        if train_options is not None or val is not None:
            raise ConfigError(
                "train_options= and val= go with data in place of train_fn (nasviz trains each "
                "round); your own train_fn(model) takes its options itself"
            )
    else:
        train_fn = _training_rounds(train_fn, train_options, val)
    prunable(model)
    state = _rewind_state(model, rewind)
    before = _Snapshot(model)
    remove(model, permanent=True)  # all or nothing: raises before any change if it cannot
    try:
        return _rounds(model, train_fn, rounds, rate, state, scope)
    except BaseException:
        before.restore(model)  # a failing train_fn leaves the model as it was given
        raise


def _rounds(
    model: nn.Module,
    train_fn: Callable[[nn.Module], Any],
    rounds: int,
    rate: float,
    state: dict[str, torch.Tensor] | None,
    scope: str,
) -> LotteryResult:
    metrics = [train_fn(model)]
    masks: list[Masks] = []
    sparsities = [0.0]
    for r in range(1, rounds + 1):
        target = 1.0 - (1.0 - rate) ** r
        m = magnitude(model, target, scope=scope)  # pruned weights are zeros, so they stay pruned
        m.meta.update(method="lottery", round=r)
        masks.append(m)
        sparsities.append(m.sparsity)
        remove(model)
        if state is not None:
            model.load_state_dict(state)
        m.apply(model)
        metrics.append(train_fn(model))
    return LotteryResult(masks, metrics, model, sparsities)


def _training_rounds(
    data: Any, options: Mapping[str, Any] | None, val: Any
) -> Callable[[nn.Module], float]:
    """A round's training on ``data`` with the training layer, checked now (before the
    lottery starts): it trains in place and returns the metric on ``val`` (or its last loss)."""
    from nasviz.data import as_batches

    if isinstance(data, nn.Module) or data is None:
        raise ConfigError(
            "lottery's second argument is the data to train on (any form nasviz.data.as_batches "
            f"takes) or your train_fn(model); got {type(data).__name__}"
        )
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"train_options must be a dict of train() options, got {options!r}")
    options = dict(options or {})
    if not {"epochs", "steps"} & set(options):
        options["epochs"] = 1
    as_batches(data, batch_size=options.get("batch_size"), what="lottery data")  # fails now
    if val is not None:
        as_batches(val, what="val")

    def train_round(model: nn.Module) -> float:
        from nasviz.training import default_metrics, evaluate, train

        run = train(model, data, **options)
        status = run.run()
        if status.state != "finished":
            raise RuntimeError(f"lottery: a round's training ended {status.state}: {run.error}")
        if val is None:
            return float(run.history["loss"].iloc[-1])
        task = run.engine.task  # as the training found it (given, or inferred from the data)
        return next(iter(evaluate(model, val, default_metrics(task), task=task).values()))

    return train_round


class _Snapshot:
    """A model's parameters, buffers and applied nasviz masks, to put back after a failure."""

    def __init__(self, model: nn.Module):
        self.masks = applied(model)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: nn.Module) -> None:
        remove(model)
        if self.masks is not None:
            self.masks.apply(model)
        model.load_state_dict(self.state)


def _rewind_state(model: nn.Module, rewind: Any) -> dict[str, torch.Tensor] | None:
    if rewind is None:
        return None
    plain = copy_model(model, plain=True)
    if isinstance(rewind, str):
        if rewind != "init":
            raise ConfigError(f"rewind must be 'init', a state dict or None, got {rewind!r}")
        return {k: v.detach().clone() for k, v in plain.state_dict().items()}
    if isinstance(rewind, Mapping):
        expected = plain.state_dict()
        missing = sorted(set(expected) - set(rewind))
        wrong = [
            k
            for k in expected
            if k in rewind and tuple(rewind[k].shape) != tuple(expected[k].shape)
        ]
        if missing or wrong:
            raise ConfigError(
                f"rewind state does not fit the model: missing {missing[:5]}, wrong shape {wrong[:5]}"
            )
        return {k: torch.as_tensor(rewind[k]).detach().clone() for k in expected}
    raise ConfigError(f"rewind must be 'init', a state dict or None, got {type(rewind).__name__}")
