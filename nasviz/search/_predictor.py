"""Predictor-guided search: the DyNAS-T / LINAS cycle.

Each cycle:
    1. evaluate a batch for real (the first one at random);
    2. fit a light scikit-learn regressor per *expensive* objective on every evaluated arch;
       *cheap* objectives (``Objective.cheap``: params, MACs) are computed exactly instead —
       inside the inner loop a linear ridge surrogate of them (fitted on exact values of the
       evaluated archs and ``cheap_samples`` random ones) ranks thousands of candidates, and the
       final candidates get their exact values before anything is chosen;
    3. run an inner NSGA-II over predicted objectives for ``inner_steps`` predicted
       evaluations, vectorized on integer index matrices (no Arch objects in the loop);
    4. send the best-ranked unevaluated, feasible archs of its final population to real
       evaluation as the next batch, and repeat.

When the search has equivalent archs (``Search(canonical=...)``, a supernet's ``canonical``),
everything happens in canonical space: archs are sampled, encoded and bred as their canonical
forms, so the predictors see one consistent encoding per subnet and the inner NSGA-II does not
spend its population or its steps on equivalents of one arch.

Predictor quality is measured on each batch before the predictors see it: Kendall tau and MAPE
between the predictions that chose the batch and the real values, plus both lists themselves
(``<objective>_predicted`` and ``<objective>_measured``, same archs in the same order), in a
``"cycle"`` event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import kendalltau
from sklearn.base import RegressorMixin, clone
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

from nasviz.errors import ConfigError
from nasviz.objectives import Objective
from nasviz.runner import Event
from nasviz.search._evolution import breed, crowding_distance, nsga2_order, violation
from nasviz.search._pareto import pareto_rank
from nasviz.search._strategy import Proposal, SearchContext, Strategy, register_strategy
from nasviz.space import Arch, SearchSpace

__all__ = ["PredictorStrategy", "default_predictor", "ridge_predictor"]

#: Random draws per exploration slot; those with new costs are preferred (see ``_explore``).
EXPLORE = 4


def default_predictor() -> RegressorMixin:
    """Gradient-boosted trees (200 depth-3 trees, learning rate 0.05, 80% row subsampling,
    seeded): fits in ~0.1 s on hundreds of archs and models the interactions that supernet
    spaces are full of (a layer's width matters only when the layer runs). On a tabulated
    ElasticMLP supernet (bench/bench_search.py, seeds other than the benchmark's) it needed
    about 1.6x fewer evaluations than ridge regression on pairwise products, the previous
    default, which remains available as :func:`ridge_predictor`."""
    return GradientBoostingRegressor(
        n_estimators=200, learning_rate=0.05, subsample=0.8, random_state=0
    )


def ridge_predictor() -> RegressorMixin:
    """Ridge regression on the encoding and its pairwise products, alpha chosen by efficient
    leave-one-out (fits in milliseconds on hundreds of archs)."""
    return make_pipeline(
        PolynomialFeatures(2, include_bias=False), RidgeCV(alphas=np.logspace(-3, 3, 13))
    )


class _Encoder:
    """``SearchSpace.encode`` for a whole (n, dims) matrix of value indices at once."""

    def __init__(self, space: SearchSpace):
        self.sizes = np.array([len(v) for v in space.dims.values()])
        self.ordinal = [space.is_ordinal(n) for n in space.names]

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        cols = []
        for j, (k, ordinal) in enumerate(zip(self.sizes, self.ordinal, strict=True)):
            if ordinal:
                cols.append((idx[:, j] / max(k - 1, 1))[:, None])  # (n, 1)
            else:
                cols.append(np.eye(k)[idx[:, j]])  # (n, k)
        return np.hstack(cols)  # (n, encoding_size)


class PredictorStrategy(Strategy):
    """DyNAS-T style predictor-guided search (see the module docstring).

    Args:
        batch_size: archs evaluated for real per cycle.
        initial: random archs evaluated before the first predictor (default twice
            ``batch_size``). The defaults, 16 random then batches of 8, reached 95% of the
            reference hypervolume of the bench's supernet tables in fewer evaluations than 16 +
            16 (tuning seeds 100-104, median 57 vs 80 on the MLP table, 54 vs 71 on the CNN's).
        inner_steps: predicted evaluations per cycle in the inner NSGA-II.
        inner_population: the inner NSGA-II's population size.
        predictor: a scikit-learn regressor, cloned per expensive objective (default
            :func:`default_predictor`).
        cheap_samples: random archs whose exact cheap objectives train the inner loop's
            surrogate of them (besides every evaluated arch).
        features: measurements used as extra predictor inputs, such as zero-cost proxies
            (:func:`nasviz.search.synflow`, ``grad_norm``, ``naswot``): Objectives measured on
            the search's supernet (``feature(net, arch)``; ``feature(None, arch)`` for a
            function search). The inner NSGA-II ranks candidates on the encoding alone; the
            final candidates and every evaluated arch are measured, and a second predictor per
            expensive objective, fitted on the encoding plus the features, chooses the batch
            (FBNetV3-style: free statistics sharpen the few real evaluations).
    """

    name = "predictor"

    def __init__(
        self,
        batch_size: int = 8,
        initial: int | None = None,
        inner_steps: int = 5000,
        inner_population: int = 100,
        predictor: RegressorMixin | None = None,
        cheap_samples: int = 256,
        features: Sequence[Objective] = (),
    ):
        for label, v, low in (
            ("batch_size", batch_size, 1),
            ("inner_steps", inner_steps, 1),
            ("inner_population", inner_population, 4),
            ("cheap_samples", cheap_samples, 0),
        ):
            if not isinstance(v, int) or v < low:
                raise ConfigError(f"predictor: {label} must be an int >= {low}, got {v!r}")
        if initial is not None and (not isinstance(initial, int) or initial < 2):
            raise ConfigError(
                f"predictor: initial must be an int >= 2 (a predictor needs data), got {initial!r}"
            )
        self.batch_size = batch_size
        self.initial = initial if initial is not None else max(2 * batch_size, 2)
        self.inner_steps = inner_steps
        self.inner_population = inner_population
        self.predictor = predictor if predictor is not None else default_predictor()
        self.cheap_samples = cheap_samples
        self.features = list(features)
        for f in self.features:
            if not isinstance(f, Objective) or f.fn is None:
                raise ConfigError(
                    f"predictor: features are Objectives with a function (e.g. "
                    f"nasviz.search.synflow(shape)), got {f!r}"
                )
        self._feature_cache: dict[Arch, np.ndarray] = {}
        self._queue: list[Arch] = []
        self._batch: dict[
            Arch, np.ndarray | None
        ] = {}  # planned arch -> predicted expensive values
        self._seen: list[tuple[np.ndarray, np.ndarray]] = []  # (predicted, real) for the batch
        self._cycle = 0
        self._trained_on = 0
        self._canon_rows: dict[tuple[int, ...], tuple[int, ...]] = {}

    def bind(self, context: SearchContext) -> None:
        super().bind(context)
        self._encode = _Encoder(context.space)
        self._sizes = self._encode.sizes
        self._signs = np.array([o.sign for o in context.objectives])
        cheap = set(context.cheap_names)
        self._cheap = [i for i, o in enumerate(context.objectives) if o.name in cheap]
        self._expensive = [i for i, o in enumerate(context.objectives) if o.name not in cheap]

    def settings(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "batch_size": self.batch_size,
            "initial": self.initial,
            "inner_steps": self.inner_steps,
            "inner_population": self.inner_population,
            "cheap_samples": self.cheap_samples,
            "features": [f.name for f in self.features] or None,
        }

    # ---- the cycle ---------------------------------------------------------------------------
    def ask(self, n: int) -> list[Proposal]:
        if not self._queue and not self._batch:
            self._plan()
        out = []
        while self._queue and len(out) < n:
            arch = self._queue.pop(0)
            if not self.context.is_known(arch):
                out.append(Proposal(arch))
            else:
                self._batch.pop(arch, None)
        return out

    def tell(self, arch: Arch, values: dict[str, float] | None) -> list[Event]:
        if arch not in self._batch:
            return []
        predicted = self._batch.pop(arch)
        if predicted is not None and values is not None:
            real = np.array([values[self.context.objectives[i].name] for i in self._expensive])
            self._seen.append((predicted, real))
        if self._batch or self._queue or self._trained_on == 0:
            return []
        event = Event("cycle", self._quality())
        self._seen = []
        return [event]

    def _quality(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "cycle": self._cycle,
            "trained_on": self._trained_on,
            "held_out": len(self._seen),
        }
        pred = np.array([p for p, _ in self._seen]).reshape(len(self._seen), len(self._expensive))
        real = np.array([r for _, r in self._seen]).reshape(pred.shape)
        for k, i in enumerate(self._expensive):
            name = self.context.objectives[i].name
            tau = kendalltau(pred[:, k], real[:, k]).statistic if len(real) >= 2 else float("nan")
            mape = float(
                np.mean(np.abs(pred[:, k] - real[:, k]) / np.maximum(np.abs(real[:, k]), 1e-12))
                * 100
            )
            info[f"{name}_kendall_tau"] = float(tau) if np.isfinite(tau) else None
            info[f"{name}_mape"] = mape if len(real) else None
            info[f"{name}_predicted"] = [float(v) for v in pred[:, k]]  # held-out, tell order
            info[f"{name}_measured"] = [float(v) for v in real[:, k]]  # same archs, same order
        return info

    def _plan(self) -> None:
        archs, values = self.context.history()
        if len(archs) < self.initial:
            chosen = self.context.random_unseen(self.initial - len(archs))
            self._queue, self._batch = list(chosen), dict.fromkeys(chosen)
            return
        self._cycle += 1
        self._trained_on = len(archs)
        idx = self._canonical(np.array([self.context.space.index_of(a) for a in archs]))  # (n, d)
        models = self._fit(idx, values)
        visited = self._inner_nsga2(idx, models)
        chosen, predicted = self._select(visited, models, values)
        self._queue = chosen
        self._batch = dict(zip(chosen, predicted, strict=True))

    # ---- predictors --------------------------------------------------------------------------
    def _fit(self, idx: np.ndarray, values: np.ndarray) -> list[Any]:
        """One fitted model per objective (cheap ones: a surrogate for the inner loop only)."""
        X = self._encode(idx)
        models: list[Any] = [None] * len(self.context.objectives)
        for i in self._expensive:
            models[i] = clone(self.predictor).fit(X, values[:, i])
        if self.features:  # (X | features) -> value, for the final choice
            XF = np.hstack([X, self._measure(idx)])
            self._with_features = {
                i: clone(self.predictor).fit(XF, values[:, i]) for i in self._expensive
            }
        if self._cheap:
            if not hasattr(
                self, "_cheap_extra"
            ):  # drawn once; exact values are cached by the engine
                self._cheap_extra = [
                    self.context.canonical(self.context.space.sample(self.context.rng))
                    for _ in range(self.cheap_samples)
                ]
            extra = self._cheap_extra
            cheap_rows = [self.context.cheap(a) for a in extra]
            Xc = np.vstack(
                [
                    X,
                    self._encode(
                        np.array([self.context.space.index_of(a) for a in extra]).reshape(
                            -1, len(self._sizes)
                        )
                    ),
                ]
            )
            for i in self._cheap:
                name = self.context.objectives[i].name
                y = np.concatenate([values[:, i], [row[name] for row in cheap_rows]])
                models[i] = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Xc, y)  # ranking aid only
        return models

    def _measure(self, idx: np.ndarray) -> np.ndarray:
        """The features of each row's arch (``(n, features)``, cached per arch)."""
        out = []
        for row in idx:
            arch = self.context.space.from_indices(row)
            if arch not in self._feature_cache:
                self._feature_cache[arch] = np.array(
                    [self.context.measure(f, arch) for f in self.features]
                )
            out.append(self._feature_cache[arch])
        return np.array(out).reshape(len(idx), len(self.features))

    def _predict(self, models: list[Any], idx: np.ndarray) -> np.ndarray:
        X = self._encode(idx)
        return np.column_stack([m.predict(X) for m in models])  # (n, m), objective units

    def _violation(self, F: np.ndarray) -> np.ndarray:
        """Summed relative violation of the objective bounds (0 when feasible)."""
        return violation(F, self.context.objectives, self.context.bounds)

    def _order(self, F: np.ndarray) -> np.ndarray:
        """Row order: feasible first, then by Pareto rank, then most isolated first."""
        return nsga2_order(F, self.context.objectives, self.context.bounds)

    def _canonical(self, idx: np.ndarray) -> np.ndarray:
        """The rows of an index matrix mapped to their canonical archs' indices (cached)."""
        if not self.context.equivalences or len(idx) == 0:
            return idx
        space, cache = self.context.space, self._canon_rows
        uniq, inverse = np.unique(idx, axis=0, return_inverse=True)  # (u, d), (n,)
        mapped = np.empty_like(uniq)
        for j, row in enumerate(map(tuple, uniq.tolist())):
            if row not in cache:
                cache[row] = space.index_of(self.context.canonical(space.from_indices(row)))
            mapped[j] = cache[row]
        return mapped[inverse.reshape(-1)]  # (n, d)

    # ---- the inner NSGA-II, vectorized on index matrices ------------------------------------
    def _inner_nsga2(self, evaluated: np.ndarray, models: list[Any]) -> np.ndarray:
        rng, P, d = self.context.rng, self.inner_population, len(self._sizes)
        F_known = self._predict(models, evaluated)
        seeds = evaluated[self._order(F_known)[:P]]
        fill = rng.integers(0, self._sizes, size=(max(P - len(seeds), 0), d))
        pop = np.vstack([seeds, self._canonical(fill)])  # (P, d)
        F = self._predict(models, pop)
        for _ in range(max(self.inner_steps // P, 1)):
            order = self._order(F)
            position = np.empty(len(pop), dtype=np.int64)
            position[order] = np.arange(len(pop))  # lower is better
            children = breed(pop, position, self._sizes, rng, P)  # (P, d)
            children = self._canonical(children)  # equivalents collapse in the unique below
            merged = np.unique(np.vstack([pop, children]), axis=0)  # (<= 2P, d)
            F_merged = self._predict(models, merged)
            keep = self._order(F_merged)[:P]
            pop, F = merged[keep], F_merged[keep]
        return pop[self._order(F)]

    def _order_against(self, F: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """Candidate order next to the measured archs: Pareto rank and crowding are computed on
        candidates and feasible measured archs together, so a candidate predicted to extend or
        fill a gap in the measured front comes before one predicted to be dominated by an arch
        already measured (such as a twin of a measured arch: same cost, same prediction)."""
        measured = measured[self._violation(measured) == 0]
        union = np.vstack([measured, F])  # (k + n, m)
        ranks = pareto_rank(union, [o.direction for o in self.context.objectives])
        crowd = crowding_distance(union * self._signs, ranks)
        k = len(measured)
        return np.lexsort((-crowd[k:], ranks[k:], self._violation(F)))

    def _select(
        self, final: np.ndarray, models: list[Any], measured: np.ndarray
    ) -> tuple[list[Arch], list[np.ndarray | None]]:
        """The next batch: the unevaluated, feasible archs of the inner search's final population
        predicted to improve most on the measured front; random exploration fills the rest."""
        space = self.context.space
        candidates = []
        for row in final:
            arch = space.from_indices(row)
            if not self.context.is_known(arch) and self.context.is_feasible(arch):
                candidates.append((row, arch))
        chosen: list[Arch] = []
        predicted: list[np.ndarray | None] = []
        if candidates:
            rows = np.array([r for r, _ in candidates])
            F = self._predict(models, rows)
            if self.features:
                XF = np.hstack([self._encode(rows), self._measure(rows)])
                for i, model in self._with_features.items():
                    F[:, i] = model.predict(XF)
            for i in self._cheap:  # exact values for the cheap objectives of real candidates
                name = self.context.objectives[i].name
                F[:, i] = [self.context.cheap(a)[name] for _, a in candidates]
            for j in self._order_against(F, measured)[: self.batch_size]:
                chosen.append(candidates[j][1])
                predicted.append(F[j, self._expensive])
        if len(chosen) < self.batch_size:  # the predicted front is exhausted: explore
            extra = self._explore(self.batch_size - len(chosen), chosen)
            chosen += extra
            predicted += [
                self._predict(models, np.array([space.index_of(a)]))[0, self._expensive]
                for a in extra
            ]
        return chosen, predicted

    def _explore(self, n: int, chosen: list[Arch]) -> list[Arch]:
        """``n`` random unseen archs, preferring new costs: among ``EXPLORE`` x n random draws,
        archs whose exact cheap objectives differ from every evaluated or chosen arch's come
        first (an arch that only differs in a dimension with no effect, such as the width of a
        layer past the depth, has the same cost and usually the same value)."""
        pool = [a for a in self.context.random_unseen(EXPLORE * n) if a not in chosen]
        if not self._cheap:
            return pool[:n]
        names = [self.context.objectives[i].name for i in self._cheap]
        seen = {tuple(self.context.cheap(a)[k] for k in names) for a in chosen}
        seen |= {tuple(v[i] for i in self._cheap) for v in self.context.history()[1].tolist()}
        novel, rest = [], []
        for arch in pool:
            cost = tuple(self.context.cheap(arch)[k] for k in names)
            (rest if cost in seen else novel).append(arch)
            seen.add(cost)
        return (novel + rest)[:n]


register_strategy("predictor", PredictorStrategy)
