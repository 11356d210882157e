"""Importance from data: per attention head, per FFN neuron and per layer of a Hugging Face model.

One calibration pass with hooks (the model is never changed: hooks are removed, the training
mode restored, no parameter's ``.grad`` is touched) gives:

* ``"activation"`` importance (Minitron): a unit's mean contribution to the residual stream, the
  L2 norm per token of what a head adds through the output projection
  (``||W_o[:, h] z_h||``) and of what a neuron adds through the down projection
  (``|a_n| ||W_down[:, n]||``), averaged over the real (not padding) tokens.
* ``"taylor"`` importance: the first-order change of the loss when the unit is zeroed,
  ``|sum_tokens z . dL/dz|`` per batch, summed and divided by the tokens (needs a loss: batches
  with ``labels``, or a causal LM, whose labels are its inputs).
* layer importance (ShortGPT / Minitron depth pruning) in both cases: block influence
  ``1 - cos(x_in, x_out)`` averaged over tokens; a layer that hardly changes its input is the
  first to drop.

:meth:`Importance.plan` turns the scores into a :class:`~nasviz.prune.StructurePlan` that keeps
the most important units under the grouped-query rule and what the config can express.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from nasviz.errors import ConfigError, check_int
from nasviz.hf import HFAdapter, adapter_for
from nasviz.prune._calibration import calibration_batches
from nasviz.prune._hf import StructurePlan
from nasviz.prune._masks import check_sparsity
from nasviz.prune._scoring import ScoringPass, calibration_mode, run_batch, structure

__all__ = ["IMPORTANCE_METHODS", "Importance"]

#: How Importance.for_data scores heads and FFN neurons: "activation" (mean contribution to the
#: residual stream, Minitron) or "taylor" (first-order loss change).
IMPORTANCE_METHODS = ("activation", "taylor")


@dataclass(frozen=True, eq=False)
class Importance:
    """Importance scores of one model's heads, FFN neurons and layers (higher = keep).

    Attributes:
        heads: one row per (layer, query head): ``layer``, ``head``, ``kv_head`` (its key/value
            head), ``score``.
        neurons: one row per (layer, FFN neuron): ``layer``, ``neuron``, ``score`` (no rows for
            MoE layers).
        layers: one row per layer: ``layer``, ``block_influence`` (1 - cos(x_in, x_out)).
        method: ``"activation"`` or ``"taylor"``.
        tokens: calibration tokens the scores average over.
        model: the scored model (plans check it was not restructured since).

    Build with :meth:`for_data`.
    """

    heads: pd.DataFrame
    neurons: pd.DataFrame
    layers: pd.DataFrame
    method: str
    tokens: int
    model: nn.Module
    structure: tuple[tuple[int, int, int], ...]

    def __repr__(self) -> str:
        return (
            f"Importance({self.method}, {len(self.layers)} layers, {len(self.heads)} heads, "
            f"{len(self.neurons)} neurons, {self.tokens} tokens)"
        )

    @classmethod
    def for_data(
        cls,
        model: nn.Module,
        data: Any,
        *,
        method: str = "activation",
        batch_size: int = 8,
        max_batches: int | None = None,
    ) -> Importance:
        """Scores from one calibration pass of ``model`` over ``data``.

        Args:
            model: a Hugging Face model of a family :func:`nasviz.hf.adapter_for` supports;
                read, never changed.
            data: a nasviz Dataset (train split) or Split, a tensor of inputs, a dict of
                tensors, or an iterable of batches (see :func:`calibration_batches`).
            method: ``"activation"`` or ``"taylor"`` (see the module docstring).
            batch_size: rows per forward where ``data`` is one block of rows.
            max_batches: calibrate on at most this many batches.
        """
        adapter = adapter_for(model)
        if method not in IMPORTANCE_METHODS:
            raise ConfigError(f"method must be one of {IMPORTANCE_METHODS}, got {method!r}")
        taylor = method == "taylor"
        batches = calibration_batches(
            data, adapter.input_name, batch_size=batch_size, max_batches=max_batches
        )
        run = ScoringPass(adapter, taylor)
        with calibration_mode(model, taylor), run.hooks():
            for batch in batches:
                run.mask = batch.get("attention_mask")
                loss = run_batch(model, adapter, batch, taylor)
                if loss is not None:
                    run.taylor_step(loss)
                run.saved.clear()
        tokens = max(run.tokens, 1.0)
        heads = pd.DataFrame(
            [
                {"layer": i, "head": h, "kv_head": h // a.group, "score": float(s) / tokens}
                for i, a in enumerate(run.attn)
                for h, s in enumerate(run.heads[i])
            ]
        )
        neurons = pd.DataFrame(
            {
                "layer": np.concatenate([np.full(len(v), i) for i, v in enumerate(run.neurons)]),
                "neuron": np.concatenate([np.arange(len(v)) for v in run.neurons]),
                "score": np.concatenate([v.numpy() for v in run.neurons]) / tokens,
            }
        )
        layers = pd.DataFrame(
            {
                "layer": np.arange(adapter.num_layers),
                "block_influence": run.influence.numpy() / tokens,
            }
        )
        return cls(heads, neurons, layers, method, int(run.tokens), model, structure(adapter))

    def head_matrix(self) -> pd.DataFrame:
        """Layer x query head table of scores."""
        return self.heads.pivot(index="layer", columns="head", values="score")

    # ---- plans ------------------------------------------------------------------------------------
    def plan(
        self,
        *,
        head_sparsity: float = 0.0,
        neuron_sparsity: float = 0.0,
        drop_layers: int = 0,
        uniform: bool = True,
    ) -> StructurePlan:
        """The :class:`~nasviz.prune.StructurePlan` keeping the most important units.

        Args:
            head_sparsity: fraction of query heads to remove per layer, in [0, 1). With
                grouped-query attention the kept count is the nearest one the rule allows
                (whole key/value groups, or the same number of query heads per group) and the
                config accepts; among those layouts the one keeping the highest total score.
            neuron_sparsity: fraction of FFN neurons to remove per layer, in [0, 1).
            drop_layers: how many layers to remove: those of lowest block influence.
            uniform: every layer keeps the same number (what configs can save); False ranks
                units across all layers (the plan then needs ``apply(..., in_memory=True)``).
        """
        adapter = adapter_for(self.model)
        if structure(adapter) != self.structure:
            raise ConfigError(
                "the model was restructured since these scores were computed; compute "
                "Importance.for_data(model, data) again"
            )
        head_sparsity = check_sparsity(head_sparsity, "head_sparsity")
        neuron_sparsity = check_sparsity(neuron_sparsity, "neuron_sparsity")
        drop_layers = check_int("drop_layers", drop_layers, 0)
        if drop_layers >= adapter.num_layers:
            raise ConfigError(
                f"drop_layers={drop_layers} would remove every layer; the model has {adapter.num_layers}"
            )
        order = self.layers.sort_values(["block_influence", "layer"], kind="stable")["layer"]
        drop = tuple(sorted(int(i) for i in order.iloc[:drop_layers]))
        kept = [i for i in range(adapter.num_layers) if i not in drop]
        heads = self._head_plan(adapter, kept, head_sparsity, uniform) if head_sparsity else {}
        neurons = (
            self._neuron_plan(adapter, kept, neuron_sparsity, uniform) if neuron_sparsity else {}
        )
        return StructurePlan(heads=heads, neurons=neurons, drop=drop)

    def _targets(
        self, table: pd.DataFrame, sizes: dict[int, int], sparsity: float, uniform: bool
    ) -> dict[int, int]:
        """Units to keep per layer: ``size - round(sparsity * size)`` (at least 1), or with
        ``uniform=False`` those above the global ``sparsity`` quantile of the scores."""
        if uniform:
            return {i: max(1, n - round(sparsity * n)) for i, n in sizes.items()}
        rows = table[table["layer"].isin(list(sizes))]
        cut = rows["score"].quantile(sparsity, interpolation="lower") if len(rows) else 0.0
        above = rows[rows["score"] > cut].groupby("layer").size()
        return {i: max(1, int(above.get(i, 0))) for i in sizes}

    def _neuron_plan(
        self, adapter: HFAdapter, kept: list[int], sparsity: float, uniform: bool
    ) -> dict:
        sizes = {i: self.structure[i][2] for i in kept if self.structure[i][2]}
        targets = self._targets(self.neurons, sizes, sparsity, uniform)
        plan = {}
        for i, n in targets.items():
            scores = self.neurons[self.neurons["layer"] == i]["score"].to_numpy()
            plan[i] = tuple(sorted(int(j) for j in np.argsort(-scores, kind="stable")[:n]))
        return plan

    def _head_plan(
        self, adapter: HFAdapter, kept: list[int], sparsity: float, uniform: bool
    ) -> dict:
        if adapter.family.heads_unprunable:
            raise ConfigError(
                f"{adapter.family.name} heads cannot be pruned: {adapter.family.heads_unprunable}"
            )
        scores = {
            i: self.heads[self.heads["layer"] == i]["score"]
            .to_numpy()
            .reshape(self.structure[i][1], -1)
            for i in kept
        }  # layer -> (kv heads, query heads per group)
        if not uniform:
            targets = self._targets(
                self.heads, {i: self.structure[i][0] for i in kept}, sparsity, False
            )
            return {
                i: _best_layout({i: scores[i]}, _layouts(*scores[i].shape), targets[i])[i]
                for i in kept
            }
        shapes = {scores[i].shape for i in kept}
        if len(shapes) > 1:
            raise ConfigError(
                f"the layers have different head layouts {sorted(shapes)} (kv heads, query heads per "
                "group), so no one head count fits them all; plan with uniform=False"
            )
        kv, r = shapes.pop()
        layouts = _layouts(kv, r)
        if adapter.limits()["heads"] == "uniform":  # what the config accepts (e.g. hidden % heads)
            layouts = [(g, q) for g, q in layouts if _expressible(adapter, g * q, g)]
        return _best_layout(scores, layouts, max(1, kv * r - round(sparsity * kv * r)))


def _layouts(kv: int, r: int) -> list[tuple[int, int]]:
    """Every grouped-query layout a layer of ``kv`` groups of ``r`` query heads can keep:
    (groups kept, query heads per kept group)."""
    return [(g, q) for g in range(1, kv + 1) for q in range(1, r + 1)]


def _choose(scores: np.ndarray, g: int, q: int) -> tuple[float, tuple[int, ...]]:
    """The best heads of one layer under layout (g, q): its ``g`` groups whose best ``q`` query
    heads score highest; returns (their total score, their query head indices)."""
    r = scores.shape[1]
    top = np.sort(scores, axis=1)[:, ::-1][:, :q].sum(axis=1)  # (kv,) best q of each group
    groups = sorted(np.argsort(-top, kind="stable")[:g])
    heads = [
        int(grp * r + j) for grp in groups for j in np.argsort(-scores[grp], kind="stable")[:q]
    ]
    return float(top[groups].sum()), tuple(sorted(heads))


def _best_layout(
    scores: dict[int, np.ndarray], layouts: list[tuple[int, int]], target: int
) -> dict:
    """Kept heads per layer under the one layout of the count nearest ``target`` (ties: more
    heads) that keeps the highest total score over all layers in ``scores``."""
    if not layouts:
        raise ConfigError("no grouped-query layout of these layers is accepted by the config")
    n = min({g * q for g, q in layouts}, key=lambda c: (abs(c - target), -c))
    candidates = [(g, q) for g, q in layouts if g * q == n]
    best = max(candidates, key=lambda gq: sum(_choose(s, *gq)[0] for s in scores.values()))
    return {i: _choose(s, *best)[1] for i, s in scores.items()}


def _expressible(adapter: HFAdapter, heads: int, kv_heads: int) -> bool:
    try:
        adapter.rewrite_config(heads=heads, kv_heads=kv_heads)
    except ConfigError:
        return False
    return True
