"""Equivalent archs (``Search(canonical=...)``, a supernet's ``canonical``): only canonical archs
are evaluated and stored, never two equivalent ones, with every strategy, across a resume, and
deterministically."""

from __future__ import annotations

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search_helpers import OBJECTIVES, SPACE, C, TinySupernet, tiny_objectives

from nasviz.errors import ConfigError
from nasviz.search import Search
from nasviz.space import SearchSpace

OPTIONS = {
    "random": {},
    "nsga2": {"population_size": 6},
    "predictor": {"batch_size": 4, "initial": 4, "inner_steps": 200, "inner_population": 12},
}


def canonical(arch):
    """With a == 0, b and c are unused (like widths past the depth): set to their first values."""
    return arch.replace(b=0, c="x") if arch["a"] == 0 else arch


#: 1 class for a == 0, 3 * 4 * 3 for the rest.
CLASSES = 1 + 3 * 4 * 3


def dead_dims(arch) -> dict[str, float]:
    """Depends on b and c only when a > 0 (equivalent archs give equal values)."""
    a, b, c = arch["a"], arch["b"], C[arch["c"]]
    live = a > 0
    return {"loss": (3 - a) + live * (0.5 * (3 - b) + c), "cost": a * a + live * (b + 0.25 * c)}


class Recorder:
    """Wraps ``dead_dims`` and records every arch it evaluates (one worker: no races)."""

    def __init__(self):
        self.seen = []

    def __call__(self, arch):
        self.seen.append(arch)
        return dead_dims(arch)


def _search(fn, strategy, budget, **kwargs):
    return Search(
        fn,
        space=SPACE,
        objectives=OBJECTIVES,
        strategy=strategy,
        budget=budget,
        storage=kwargs.pop("storage", ":memory:"),
        seed=kwargs.pop("seed", 0),
        strategy_options=OPTIONS.get(strategy) if isinstance(strategy, str) else None,
        **kwargs,
    )


def _assert_canonical_once(archs):
    assert all(canonical(a) == a for a in archs), "an evaluated arch is not canonical"
    assert len(set(archs)) == len(archs), "two equivalent archs were evaluated"


@pytest.mark.parametrize("strategy", ["random", "nsga2", "predictor"])
def test_equivalent_archs_are_evaluated_once(strategy):
    fn = Recorder()
    search = _search(fn, strategy, budget=30, canonical=canonical)
    assert search.run().state == "finished"
    _assert_canonical_once(fn.seen)
    assert len(fn.seen) == 30
    frame = search.results
    stored = [SPACE.validate(r) for r in frame[list(SPACE.names)].to_dict("records")]
    assert stored == fn.seen  # what is stored and reported is the canonical arch evaluated


@pytest.mark.parametrize("strategy", ["random", "nsga2", "predictor"])
def test_search_ends_when_every_class_is_evaluated(strategy):
    fn = Recorder()
    search = _search(fn, strategy, budget=SPACE.size, canonical=canonical)
    status = search.run()
    assert status.state == "finished"
    _assert_canonical_once(fn.seen)
    assert len(fn.seen) == CLASSES < SPACE.size
    assert {canonical(a) for a in SPACE} == set(fn.seen)


def test_an_optuna_sampler_learns_from_the_canonical_trials():
    fn = Recorder()
    search = _search(fn, optuna.samplers.TPESampler(seed=0), budget=20, canonical=canonical)
    assert search.run().state == "finished"
    _assert_canonical_once(fn.seen)
    trials = search.study.get_trials(deepcopy=False)
    replaced = [t for t in trials if t.user_attrs.get("nasviz", {}).get("skipped") == "equivalent"]
    assert replaced  # seed 0: TPE proposes a non-canonical arch
    for t in replaced:  # a proposal that was not canonical points to its evaluated form
        target = trials[t.user_attrs["nasviz"]["evaluated_as"]]
        assert t.state == optuna.trial.TrialState.PRUNED
        assert SPACE.validate(target.params) == canonical(SPACE.validate(t.params))
    assert len(search.results) == 20


class CanonicalSupernet(TinySupernet):
    """A supernet-like object whose ``canonical`` says b and c are unused when a == 0."""

    def canonical(self, arch):
        return canonical(SPACE.validate(arch))


def test_a_supernets_canonical_is_used_by_default():
    net = CanonicalSupernet()
    counter: list[int] = []
    search = Search(
        net,
        objectives=tiny_objectives(counter),
        strategy="random",
        budget=SPACE.size,
        storage=":memory:",
        seed=1,
    )
    assert search.run().state == "finished"
    assert net.calls == CLASSES  # one evaluation per subnet
    frame = search.results
    stored = [SPACE.validate(r) for r in frame[list(SPACE.names)].to_dict("records")]
    _assert_canonical_once(stored)


@pytest.mark.parametrize("strategy", ["random", "predictor"])
def test_resume_never_evaluates_an_equivalent_again(tmp_path, strategy):
    path = str(tmp_path / "canon.journal")
    first = Recorder()
    assert _search(first, strategy, 12, storage=path, canonical=canonical).run().state == "finished"
    second = Recorder()
    again = Search.load(path, second, canonical=canonical, budget=30)
    assert again.run().state == "finished"
    _assert_canonical_once(first.seen + second.seen)
    assert len(first.seen) == 12 and len(second.seen) == 18
    assert len(again.results) == 30


@pytest.mark.parametrize("strategy", ["random", "nsga2", "predictor"])
def test_same_seed_gives_the_same_search(strategy):
    runs = []
    for _ in range(2):
        fn = Recorder()
        _search(fn, strategy, 20, canonical=canonical, seed=3).run()
        runs.append(fn.seen)
    assert runs[0] == runs[1]


def test_bad_canonical_mappings_are_config_errors():
    with pytest.raises(ConfigError, match="canonical must be a function"):
        _search(dead_dims, "random", 5, canonical="identity")
    with pytest.raises(ConfigError, match="arch of the search space"):
        _search(dead_dims, "random", 5, canonical=lambda a: a.replace(a=7))
    flip = {"x": "x", "y": "z", "z": "y"}  # z -> y -> z
    with pytest.raises(ConfigError, match="not idempotent"):
        _search(dead_dims, "random", 5, canonical=lambda a: a.replace(c=flip[a["c"]]))


@settings(max_examples=15, deadline=None)
@given(
    dead_from=st.integers(min_value=1, max_value=4),
    strategy=st.sampled_from(["random", "predictor"]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_never_two_equivalents_for_any_partition(dead_from, strategy, seed):
    """Dims ``x{i}`` for ``i >= depth`` are unused; whatever the cut, evaluations are distinct
    subnets and the search stops once every subnet is evaluated."""
    space = SearchSpace({"depth": list(range(dead_from)), **{f"x{i}": [0, 1, 2] for i in range(3)}})

    def canon(arch):
        return arch.replace(**{f"x{i}": 0 for i in range(arch["depth"], 3)})

    seen = []

    def fn(arch):
        seen.append(arch)
        xs = [arch[f"x{i}"] for i in range(arch["depth"])]
        return {
            "loss": float(sum(xs)) - arch["depth"],
            "cost": float(len(xs) + sum(x * x for x in xs)),
        }

    classes = len({canon(a) for a in space})
    search = Search(
        fn,
        space=space,
        objectives=OBJECTIVES,
        strategy=strategy,
        budget=space.size,
        storage=":memory:",
        seed=seed,
        canonical=canon,
        strategy_options=OPTIONS[strategy],
    )
    assert search.run().state == "finished"
    assert all(canon(a) == a for a in seen)
    assert len(set(seen)) == len(seen) == classes
