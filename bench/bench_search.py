"""Search benchmarks: sample efficiency (random vs nsga2 vs predictor), ZDT1/ZDT2 hypervolume,
and the engine's overhead per trial (default journal storage and in memory).

Sample efficiency uses a deterministic synthetic accuracy surrogate over an OFA-sized space
(5 stages x 4 blocks, kernel {3, 5, 7}, expand {3, 4, 6}, depth {2, 3, 4}: 45 dims, ~3e20
archs) with exact analytic MACs as the cheap objective. A real trained ElasticCNN was not used:
one subnet accuracy evaluation costs ~0.6 s on this machine, so even its 19,683-subnet space
cannot be tabulated within a benchmark run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._report import Figure
from nasviz.objectives import Objective
from nasviz.search import Search, hypervolume, hypervolume_trace, pareto_mask
from nasviz.space import SearchSpace

SEEDS = (0, 1, 2, 3, 4)
CAPS = {"random": 1200, "nsga2": 1200, "predictor": 400}  # evaluations per sample-efficiency run
STRATEGIES = {
    "random": {},
    "nsga2": {"population_size": 24},
    "predictor": {"batch_size": 20, "initial": 24},
}

# ---- an OFA-sized space with a deterministic accuracy surrogate -----------------------------
STAGES, BLOCKS = 5, 4
CHANNELS = np.array([16, 24, 40, 80, 112])
SIDE = np.array([16, 8, 4, 2, 1])
KERNELS, EXPANDS, DEPTHS = (3, 5, 7), (3, 4, 6), (2, 3, 4)
OFA = SearchSpace(
    {
        **SearchSpace.repeated("kernel", STAGES * BLOCKS, KERNELS),
        **SearchSpace.repeated("expand", STAGES * BLOCKS, EXPANDS),
        **SearchSpace.repeated("depth", STAGES, DEPTHS),
    }
)
_NOISE = np.random.default_rng(1234).normal(0, 0.15, size=(STAGES * BLOCKS, 3, 3))


def _parts(idx: np.ndarray):
    """idx (n, 45) of value indices -> kernel, expand (n, 20), active mask (n, 20)."""
    n = STAGES * BLOCKS
    k = np.array(KERNELS)[idx[:, :n]]
    e = np.array(EXPANDS)[idx[:, n : 2 * n]]
    depth = np.array(DEPTHS)[idx[:, 2 * n :]]  # (n, 5)
    block = np.tile(np.arange(BLOCKS), STAGES)  # (20,)
    active = block[None, :] < np.repeat(depth, BLOCKS, axis=1)  # (n, 20)
    return k, e, active


def ofa_macs(idx: np.ndarray) -> np.ndarray:
    """Exact MACs (millions) of the inverted-residual blocks: H^2 * C * e * (2C + k^2)."""
    k, e, active = _parts(idx)
    c = np.repeat(CHANNELS, BLOCKS)[None, :]
    h2 = np.repeat(SIDE**2, BLOCKS)[None, :]
    return (active * h2 * c * e * (2 * c + k**2)).sum(axis=1) / 1e6


def ofa_accuracy(idx: np.ndarray) -> np.ndarray:
    """Saturating in capacity, with stage-dependent kernel value and fixed per-choice effects."""
    k, e, active = _parts(idx)
    stage = np.repeat(np.arange(STAGES), BLOCKS)[None, :]
    kernel_gain = np.where(stage < 2, (k - 3) / 4, (7 - k) / 8)  # big kernels help early only
    capacity = (active * (np.log(e) * (1 + 0.15 * stage) + 0.6 * kernel_gain)).sum(axis=1)
    rows = np.arange(STAGES * BLOCKS)[None, :]
    ki, ei = idx[:, : STAGES * BLOCKS], idx[:, STAGES * BLOCKS : 2 * STAGES * BLOCKS]
    noise = (active * _NOISE[rows, ki, ei]).sum(axis=1)
    return 92 - 40 * np.exp(-capacity / 10) + noise


def _ofa_search(strategy: str, seed: int, budget: int) -> Search:
    def evaluate(arch):
        return {"accuracy": float(ofa_accuracy(np.array([OFA.index_of(arch)]))[0])}

    macs = Objective(
        "macs",
        "minimize",
        lambda _, arch: float(ofa_macs(np.array([OFA.index_of(arch)]))[0]),
        cheap=True,
    )
    search = Search(
        evaluate,
        space=OFA,
        objectives=[("accuracy", "maximize"), macs],
        strategy=strategy,
        budget=budget,
        storage=":memory:",
        seed=seed,
        strategy_options=STRATEGIES[strategy],
    )
    search.run.run()
    return search


def sample_efficiency() -> list[Figure]:
    runs = {(s, seed): _ofa_search(s, seed, CAPS[s]).results for s in STRATEGIES for seed in SEEDS}
    dirs = ["maximize", "minimize"]
    fronts = [r[["accuracy", "macs"]].to_numpy() for r in runs.values()]
    every = np.vstack(fronts)
    ref_front = every[pareto_mask(every, dirs)]  # the best front any run found
    ref = np.array([every[:, 0].min(), every[:, 1].max()])  # worst accuracy and MACs seen
    target = 0.95 * hypervolume(ref_front, dirs, ref)
    needed: dict[str, list[int]] = {s: [] for s in STRATEGIES}
    for (s, _), frame in runs.items():
        trace = hypervolume_trace(frame[["accuracy", "macs"]].to_numpy(), dirs, ref)
        hit = np.flatnonzero(trace >= target)
        needed[s].append(int(hit[0]) + 1 if len(hit) else CAPS[s] + 1)
    med = {s: statistics.median(v) for s, v in needed.items()}
    out = [
        Figure(
            f"search.ofa_surrogate.evals_to_95pct_hv.{s}",
            med[s],
            "evals",
            f"95% of the hv of the best front found by any run; median over seeds {SEEDS}; {CAPS[s] + 1} = not reached in {CAPS[s]}",
        )
        for s in STRATEGIES
    ]
    reached = {s: med[s] <= CAPS[s] for s in STRATEGIES}
    for base, target in (("random", 3.0), ("nsga2", 1.5)):
        ratio = float(med[base] / med["predictor"])
        censored = not (reached[base] and reached["predictor"])
        note = f"{base} evals / predictor evals" + (
            f" (censored: reached {base}={reached[base]}, predictor={reached['predictor']})"
            if censored
            else ""
        )
        out.append(
            Figure(
                f"search.ofa_surrogate.predictor_vs_{base}",
                ratio,
                "x",
                note,
                f">= {target}",
                bool(ratio >= target and not censored),
            )
        )
    return out


# ---- ZDT1 / ZDT2, 10 dims, 16 levels each ----------------------------------------------------
ZDT_SPACE = SearchSpace({f"x{i}": [round(j / 15, 6) for j in range(16)] for i in range(10)})


def zdt1(arch):
    x = np.array(list(arch.values()))
    g = 1 + 9 * x[1:].mean()
    return {"f1": float(x[0]), "f2": float(g * (1 - np.sqrt(x[0] / g)))}


def zdt2(arch):
    x = np.array(list(arch.values()))
    g = 1 + 9 * x[1:].mean()
    return {"f1": float(x[0]), "f2": float(g * (1 - (x[0] / g) ** 2))}


def zdt() -> list[Figure]:
    out = []
    options = {
        "random": {},
        "nsga2": {"population_size": 40},
        "predictor": {"batch_size": 20, "initial": 40},
    }
    for problem in (zdt1, zdt2):
        for s, opts in options.items():
            search = Search(
                problem,
                space=ZDT_SPACE,
                objectives=[("f1", "minimize"), ("f2", "minimize")],
                strategy=s,
                budget=1000,
                storage=":memory:",
                seed=0,
                strategy_options=opts,
            )
            search.run.run()
            trace = hypervolume_trace(
                search.results[["f1", "f2"]].to_numpy(), ["minimize"] * 2, [1.1, 11.0]
            )
            for n in (200, 1000):
                out.append(
                    Figure(
                        f"search.{problem.__name__}.hv_at_{n}.{s}",
                        float(trace[n - 1]),
                        "hv",
                        "ref (1.1, 11); seed 0; continuous true front hv 11.77 (zdt1), 11.43 (zdt2)",
                    )
                )
    return out


# ---- engine overhead ---------------------------------------------------------------------------
def _trivial(arch):
    return {"a": float(arch["x0"]), "b": float(-arch["x1"])}


def overhead() -> list[Figure]:
    space = SearchSpace({f"x{i}": list(range(10)) for i in range(10)})
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("journal", "memory"):
            for n in (100, 1000, 5000):
                storage = str(Path(tmp) / f"o{n}.journal") if kind == "journal" else ":memory:"
                search = Search(
                    _trivial,
                    space=space,
                    objectives=[("a", "minimize"), ("b", "minimize")],
                    strategy="random",
                    budget=n,
                    storage=storage,
                    seed=0,
                )
                t0 = time.perf_counter()
                search.run.run()
                wall = time.perf_counter() - t0
                per = (wall - search.results["duration"].sum()) / n * 1e3
                target = "<= 5" if n == 5000 else ""
                out.append(
                    Figure(
                        f"search.overhead.{kind}.{n}_trials",
                        per,
                        "ms/trial",
                        "wall time minus evaluation time, random strategy, 1 worker",
                        target,
                        bool(per <= 5) if target else None,
                    )
                )
    return out


def run() -> list[Figure]:
    return sample_efficiency() + zdt() + overhead()


if __name__ == "__main__":
    from bench._report import table

    print(table(run()))
