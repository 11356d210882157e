"""Gradual magnitude pruning (Zhu & Gupta, "To prune, or not to prune").

During training the target sparsity follows the cubic schedule

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3,   t in [t0, t0 + n * dt]

and every ``dt`` steps the smallest-magnitude weights are masked (through the same
parametrization as :meth:`Masks.apply`, so pruned weights stay pruned while the optimizer
runs). Pruned weights are zeros, so they rank lowest again: the masks only ever grow.

:class:`GradualPruning` is a plain callback: call it after every optimizer step of your own
loop (``cb(step)``), or subscribe it to a nasviz training run
(``train_supernet(...).subscribe(cb)``): it follows the ``"step"`` of the run's events and
ignores events without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from torch import nn

from nasviz._compat import renamed_arguments
from nasviz.errors import ConfigError
from nasviz.prune._magnitude import SCOPES, magnitude
from nasviz.prune._masks import Masks, check_sparsity, prunable, remove

__all__ = ["GradualPruning", "gradual", "zhu_gupta_sparsity"]


def zhu_gupta_sparsity(
    step: int, final: float, n_steps: int, every: int = 1, start: int = 0, initial: float = 0.0
) -> float:
    """The target sparsity at ``step``: ``initial`` before ``start``, ``final`` after
    ``start + n_steps * every``, the cubic ramp in between (held between pruning steps)."""
    if step < start:
        return initial
    k = min((step - start) // every, n_steps)  # pruning steps taken so far
    return final + (initial - final) * (1.0 - k / n_steps) ** 3


class GradualPruning:
    """The callback returned by :func:`gradual`.

    Contract: call it from the thread that trains the model, after the optimizer step (it
    changes the model's masks in place). ``masks``, ``history`` and ``done`` may be read at any
    time from that thread.
    """

    def __init__(
        self,
        model: nn.Module,
        final_sparsity: float,
        n_steps: int,
        every: int,
        start: int,
        initial_sparsity: float,
        scope: str,
    ):
        self.model = model
        self.final_sparsity = final_sparsity
        self.n_steps, self.every, self.start = n_steps, every, start
        self.initial_sparsity = initial_sparsity
        self.scope = scope
        self.masks: Masks | None = None
        self._step = -1
        self._rows: list[dict[str, Any]] = []

    @property
    def end(self) -> int:
        """The last step at which the schedule prunes."""
        return self.start + self.n_steps * self.every

    @property
    def done(self) -> bool:
        return self._step >= self.end

    def schedule(self, step: int) -> float:
        """Target sparsity at ``step``."""
        return zhu_gupta_sparsity(
            step, self.final_sparsity, self.n_steps, self.every, self.start, self.initial_sparsity
        )

    @property
    def history(self) -> pd.DataFrame:
        """One row per pruning step: step, target and reached sparsity."""
        return pd.DataFrame(self._rows, columns=["step", "target", "sparsity"])

    def __call__(self, step: Any = None, *args: Any, **kwargs: Any) -> Masks | None:
        """Advances to ``step`` and prunes when the schedule says so; returns the new masks or
        None.

        ``step`` is an int, None (the step after the last one seen), or an Event from a
        training run: events whose data carry an int ``"step"`` (nasviz's ``"loss"`` and
        ``"eval"`` events) move the schedule there; every other event (``"status"``,
        ``"error"``, ...) is ignored, so subscribing the callback to a run never shifts it.
        """
        if step is not None and not isinstance(step, int):
            data = getattr(step, "data", None)
            step = data.get("step") if isinstance(data, Mapping) else None
            if isinstance(step, bool) or not isinstance(step, int):
                return None  # an event without a step: nothing to schedule
        step = self._step + 1 if step is None else int(step)
        self._step = step
        if step < self.start or step > self.end or (step - self.start) % self.every:
            return None
        target = self.schedule(step)
        if self.masks is not None and abs(target - self.masks.meta["sparsity"]) < 1e-12:
            return None
        self.masks = magnitude(self.model, target, scope=self.scope)
        self.masks.meta.update(method="gradual", step=step)
        self.masks.apply(self.model)
        self._rows.append({"step": step, "target": target, "sparsity": self.masks.sparsity})
        return self.masks

    on_step = __call__

    def finish(self, permanent: bool = True) -> nn.Module:
        """Takes the masks off the model: ``permanent`` leaves pruned weights as zeros."""
        return remove(self.model, permanent=permanent)


@renamed_arguments(final_sparsity="sparsity")
def gradual(
    model: nn.Module,
    sparsity: float,
    n_steps: int,
    every: int = 1,
    start: int = 0,
    initial_sparsity: float = 0.0,
    scope: str = "global",
) -> GradualPruning:
    """A callback that prunes ``model`` gradually while it trains.

    Args:
        sparsity: the final sparsity s_f (was ``final_sparsity``), reached at step
            ``start + n_steps * every``.
        n_steps: n, the number of pruning steps.
        every: Δt, training steps between pruning steps.
        start: t0, the step of the first pruning.
        initial_sparsity: s_i.
        scope: ``"global"`` or ``"layer"`` magnitude ranking.

    Example:
        >>> cb = prune.gradual(model, 0.8, n_steps=10, every=50)
        >>> for step, (x, y) in enumerate(batches):
        ...     loss(model(x), y).backward(); opt.step(); opt.zero_grad()
        ...     cb(step)
    """
    sparsity = check_sparsity(sparsity)
    initial_sparsity = check_sparsity(initial_sparsity, "initial_sparsity")
    if initial_sparsity > sparsity:
        raise ConfigError(
            f"initial_sparsity {initial_sparsity} must not exceed sparsity {sparsity}"
        )
    for name, value, low in (("n_steps", n_steps, 1), ("every", every, 1), ("start", start, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {SCOPES}, got {scope!r}")
    prunable(model)  # a model without prunable weights fails now, not mid-training
    return GradualPruning(model, sparsity, n_steps, every, start, initial_sparsity, scope)
