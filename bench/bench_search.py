"""Search benchmarks: sample efficiency (random vs nsga2 vs predictor) on a real trained
supernet, ZDT1/ZDT2 hypervolume, and the engine's overhead per trial (journal storage with
both durabilities, and in memory).

Sample efficiency uses a real ElasticMLP supernet (widths {16, 32, 48, 64, 96, 128} per layer,
1-4 layers: 5,184 archs, 1,554 distinct subnets) trained with ``train_supernet`` on digits
(seeded, one torch thread), whose every subnet was evaluated exhaustively: validation accuracy
(``evaluate_accuracy``), exact MACs (``count_macs``) and params. The table is cached under
``bench/_cache/`` and rebuilt deterministically when missing (about 30 s); strategies then
search it by look-up. Because the table is exhaustive, the reference hypervolume is exact: the
hypervolume of the true Pareto front, with the reference point ``default_reference(true
front)`` (the front's nadir moved 10% of its range further). Every strategy searches with
the supernet's ``canonical`` mapping (archs that differ only in the widths of layers past the
depth are one subnet, evaluated once), so none of them spends evaluations on equivalents.
``CHECK_SEEDS`` repeat the comparison on seeds never looked at while developing. An ElasticCNN was not used: one
of its subnet evaluations costs ~0.6 s here, too slow to tabulate its 19,683 subnets.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench._report import Figure
from nasviz.objectives import Objective
from nasviz.search import Search, default_reference, hypervolume, hypervolume_trace, pareto_mask
from nasviz.space import SearchSpace

SEEDS = (0, 1, 2, 3, 4)
#: A second seed set, reported separately as a check against tuning on ``SEEDS``.
CHECK_SEEDS = (5, 6, 7, 8, 9)
#: Evaluations at most per run; a run stops as soon as it reaches 95% of the true front's hv.
CAP = 5184
STRATEGIES = {
    "random": {},
    "nsga2": {"population_size": 24},
    "predictor": {"batch_size": 16, "initial": 32},
}

# ---- a real supernet, tabulated ------------------------------------------------------------
CACHE = Path(__file__).parent / "_cache"
TABLE = {
    "widths": (16, 32, 48, 64, 96, 128),
    "depths": (1, 2, 3, 4),
    "seed": 0,
    "data_seed": 0,
    "val": 0.3,  # validation = the 30% not trained on (digits' default val + test splits)
    "test": 0.0,
}


def _mlp(in_features: int = 64, num_classes: int = 10):
    from nasviz.supernet import ElasticMLP

    return ElasticMLP(in_features, num_classes, widths=TABLE["widths"], depths=TABLE["depths"])


def _build_table() -> dict[str, np.ndarray]:
    """Trains the supernet and evaluates every subnet (archs that differ only in the widths of
    layers past ``depth`` are one subnet, evaluated once)."""
    from nasviz.data import digits
    from nasviz.objectives import count_macs, evaluate_accuracy
    from nasviz.supernet import train_supernet

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same floating-point results on any machine
    try:
        data = digits(seed=TABLE["data_seed"], val=TABLE["val"], test=TABLE["test"], flat=True)
        torch.manual_seed(TABLE["seed"])
        net = _mlp()
        train_supernet(net, data, seed=TABLE["seed"]).run()
        net.eval()
        seen: dict[tuple, tuple[float, float, float]] = {}
        rows = []
        for arch in net.space:
            key = (arch["depth"], arch.group("width")[: arch["depth"]])
            if key not in seen:
                seen[key] = (
                    evaluate_accuracy(net, data, arch),
                    float(count_macs(net, (1, 64), arch)),
                    float(net.count_params(arch)),
                )
            rows.append(seen[key])
    finally:
        torch.set_num_threads(threads)
    values = np.array(rows, dtype=np.float64)  # (archs, 3)
    return {"accuracy": values[:, 0], "macs": values[:, 1], "params": values[:, 2]}


def mlp_table() -> tuple[SearchSpace, dict[str, np.ndarray]]:
    """The space and its exhaustive table (arrays in the space's enumeration order), from
    ``bench/_cache/`` when there, else built and cached (npz, no pickles)."""
    space = _mlp().space
    tag = json.dumps({**TABLE, "torch": torch.__version__.split("+")[0]}, sort_keys=True)
    path = CACHE / f"mlp_table-{hashlib.sha256(tag.encode()).hexdigest()[:12]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return space, {k: f[k] for k in ("accuracy", "macs", "params")}
    table = _build_table()
    CACHE.mkdir(exist_ok=True)
    np.savez(path, **table)
    return space, table


def mlp_canonical(space: SearchSpace):
    """ElasticMLP's ``canonical`` (widths of layers past the depth set to the smallest width), or
    the same mapping built from the space when the supernet has none."""
    net = _mlp()
    if hasattr(net, "canonical"):
        return net.canonical
    smallest = space.dims["width.0"][0]
    layers = max(space.dims["depth"])
    return lambda arch: arch.replace(
        **{f"width.{i}": smallest for i in range(arch["depth"], layers)}
    )


def _check_canonical(space, table, index, canonical) -> None:
    """Equivalent archs must have equal table rows (they are one subnet)."""
    for arch in space:
        c = index[canonical(arch)]
        for key in ("accuracy", "macs", "params"):
            if table[key][c] != table[key][index[arch]]:
                raise RuntimeError(f"canonical({dict(arch)}) has another {key} in the table")


def _table_search(
    space, table, index, strategy, seed, target, ref, canonical=None
) -> tuple[Search, int]:
    """Runs ``strategy`` on the table until its hv reaches ``target`` (or CAP evaluations);
    returns the search and the evaluations it needed (CAP + 1: not reached)."""

    def evaluate(arch):
        return {"accuracy": float(table["accuracy"][index[arch]])}

    macs = Objective(
        "macs", "minimize", lambda _, arch: float(table["macs"][index[arch]]), cheap=True
    )
    search = Search(
        evaluate,
        space=space,
        objectives=[("accuracy", "maximize"), macs],
        strategy=strategy,
        budget=CAP,
        storage=":memory:",
        seed=seed,
        strategy_options=STRATEGIES[strategy],
        canonical=canonical,
    )
    dirs = ["maximize", "minimize"]
    front: list[list[float]] = []
    hit: list[int] = []

    def watch(event):
        if event.kind != "result" or event.data["state"] != "COMPLETE" or hit:
            return
        point = [event.data["accuracy"], event.data["macs"]]
        points = np.array([*front, point])
        front[:] = points[pareto_mask(points, dirs)].tolist()
        if hypervolume(np.array(front), dirs, ref) >= target:
            hit.append(search.status.done)
            search.run.stop(wait=False)  # takes effect after this evaluation

    search.subscribe(watch)
    status = search.run.run()
    if status.state == "failed":
        raise RuntimeError(f"{strategy} search failed:\n{search.traceback}")
    return search, hit[0] if hit else CAP + 1


def sample_efficiency(seeds: tuple[int, ...] = SEEDS, tag: str = "") -> list[Figure]:
    """Evaluations each strategy needs to reach 95% of the true front's hv on the MLP table,
    median over ``seeds``; figure names get ``tag`` (e.g. ``".check"``) after ``mlp_table``."""
    space, table = mlp_table()
    index = {arch: i for i, arch in enumerate(space)}
    canonical = mlp_canonical(space)
    _check_canonical(space, table, index, canonical)
    subnets = len({canonical(a) for a in space})
    dirs = ["maximize", "minimize"]
    values = np.column_stack([table["accuracy"], table["macs"]])
    front = values[pareto_mask(values, dirs)]
    ref = default_reference(front, dirs)
    target = 0.95 * hypervolume(front, dirs, ref)
    needed = {
        s: [
            _table_search(space, table, index, s, seed, target, ref, canonical)[1] for seed in seeds
        ]
        for s in STRATEGIES
    }
    med = {s: statistics.median(v) for s, v in needed.items()}
    out = [
        Figure(
            f"search.mlp_table{tag}.evals_to_95pct_hv.{s}",
            med[s],
            "evals",
            f"95% of the exact hv of the true front of {space.size} archs ({subnets} distinct "
            f"subnets; equivalents skipped by every strategy); median over seeds {seeds} (per "
            f"seed: {needed[s]}); {CAP + 1} = not reached in {CAP}",
        )
        for s in STRATEGIES
    ]
    for base, goal in (("random", 3.0), ("nsga2", 1.5)):
        ratio = float(med[base] / med["predictor"])
        censored = med[base] > CAP or med["predictor"] > CAP
        out.append(
            Figure(
                f"search.mlp_table{tag}.predictor_vs_{base}",
                ratio,
                "x",
                f"{base} evals / predictor evals"
                + (" (censored: not reached)" if censored else ""),
                f">= {goal}",
                bool(ratio >= goal and not censored),
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


#: storage kind -> (Search storage, durability); "journal" is the default storage.
OVERHEAD_KINDS = {
    "journal": ("journal", "process"),
    "journal_fsync": ("journal", "os"),
    "memory": (":memory:", "process"),
}


def overhead() -> list[Figure]:
    space = SearchSpace({f"x{i}": list(range(10)) for i in range(10)})
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (where, durability) in OVERHEAD_KINDS.items():
            for n in (100, 1000, 5000):
                storage = str(Path(tmp) / f"{kind}{n}.journal") if where == "journal" else where
                search = Search(
                    _trivial,
                    space=space,
                    objectives=[("a", "minimize"), ("b", "minimize")],
                    strategy="random",
                    budget=n,
                    storage=storage,
                    seed=0,
                    durability=durability,
                )
                t0 = time.perf_counter()
                search.run.run()
                wall = time.perf_counter() - t0
                per = (wall - search.results["duration"].sum()) / n * 1e3
                target = "<= 5" if n == 5000 and kind == "journal" else ""
                out.append(
                    Figure(
                        f"search.overhead.{kind}.{n}_trials",
                        per,
                        "ms/trial",
                        f"wall time minus evaluation time, random strategy, 1 worker, {where} "
                        f"storage, durability={durability!r}",
                        target,
                        bool(per <= 5) if target else None,
                    )
                )
    return out


def run() -> list[Figure]:
    return sample_efficiency() + sample_efficiency(CHECK_SEEDS, ".check") + zdt() + overhead()


if __name__ == "__main__":
    from bench._report import table

    print(table(run()))
