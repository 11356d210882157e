"""Searches that scale: engine cost per trial up to 100k trials, worker processes on one study,
PostgreSQL, multi-fidelity (successive halving vs full fidelity) and zero-cost proxies.

1. Engine cost per trial of the default strategy (NSGA-II, population 20) at 1k, 5k, 10k and
   100k trials, in memory and on a journal file, with random search's as the floor (same
   storage kind, same run): one search of a trivial function over a space of 10^10 archs runs
   to 100k (``SCALE_TRIALS``); the cost at n trials is the median time between consecutive
   results around the n-th (a window of 500), evaluation time included (a few microseconds).
   Also the number of trials stored that are not results: duplicates (and any other skipped
   proposal) must never be stored.
2. Worker processes: wall time of a budget of CPU-bound evaluations (a pure-Python loop of
   about 40 ms) with one search process vs two sharing a journal, each with one evaluation
   thread, measured from a start signal after the processes imported nasviz; next to it the
   machine's own speed-up for the same evaluations split over 1 vs 2 plain processes (no
   search, no storage: the ceiling on a shared machine); paired and interleaved (``ROUNDS``
   rounds).
3. PostgreSQL: engine overhead per trial (wall time minus evaluation time, over the run and
   over its last 500 trials) of the default strategy at 5,000 trials, on a PostgreSQL server
   started for the bench (Debian's postgresql, as the tests start it; fsync off).
4. Multi-fidelity: small MLPs trained from scratch on digits (depth 1-3 x width 8-128 x
   Adam learning rate 1e-3..1e-1: 75 archs), 27 epochs each; every arch's whole training
   curve (validation error per epoch) is computed once and cached (``bench/_cache``), then
   searches report it epoch by epoch, so both arms see identical values. Objectives: final
   validation error and parameter count. Training epochs spent until the completed trials'
   hypervolume reaches 95% of the reference (the true front of the full-fidelity table, with
   ``default_reference``), random strategy, budget = the whole space, successive halving
   (eta 3, rungs 1/3/9, max 27) vs full fidelity; median over ``FIDELITY_SEEDS``.
5. Zero-cost proxies (synflow, grad-norm, NASWOT): Kendall tau against trained accuracy on
   the exhaustive tables: the from-scratch MLP table above (proxies of each MLP at its
   initialization, the weights training started from), and bench_search's ElasticMLP supernet
   table (proxies of every distinct subnet of the untrained supernet, and of the trained one).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from bench._report import Figure
from nasviz.search import (
    Search,
    SuccessiveHalving,
    default_reference,
    grad_norm,
    hypervolume,
    naswot,
    pareto_mask,
    synflow,
)
from nasviz.space import SearchSpace

CACHE = Path(__file__).parent / "_cache"
#: Trials of the engine-cost runs (the figures at 1k, 10k and 100k need 100k).
SCALE_TRIALS = int(os.environ.get("NASVIZ_BENCH_SCALE_TRIALS", 100_000))
SCALE_AT = (1_000, 5_000, 10_000, 100_000)
STRATEGIES = ("nsga2", "random")
WINDOW = 500
BIG = SearchSpace({f"x{i}": list(range(10)) for i in range(10)})
ROUNDS = 3
PG_TRIALS = int(os.environ.get("NASVIZ_BENCH_PG_TRIALS", 5_000))
FIDELITY_SEEDS = tuple(range(10))
EPOCHS = 27
GOAL = 0.95


def _trivial(arch) -> dict[str, float]:
    return {"a": float(arch["x0"] + arch["x1"]), "b": float(9 - arch["x0"] + arch["x2"])}


# ---- 1. engine cost per trial -----------------------------------------------------------------
def _timed_run(storage: str, budget: int, strategy: str = "nsga2") -> tuple[Search, np.ndarray]:
    search = Search(
        _trivial, BIG, objectives=[("a", "minimize"), ("b", "minimize")], strategy=strategy,
        budget=budget, storage=storage, seed=0,
    )  # fmt: skip
    stamps: list[float] = []
    search.subscribe(lambda e: stamps.append(time.perf_counter()) if e.kind == "result" else None)
    search.run()
    return search, np.diff(np.array(stamps))


def engine_cost() -> list[Figure]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("memory", "journal"):
            medians: dict[str, dict[int, float]] = {}
            for strategy in STRATEGIES:  # random: the engine's floor, same storage, same run
                storage = ":memory:" if kind == "memory" else str(Path(tmp) / f"{strategy}.journal")
                t0 = time.perf_counter()
                search, gaps = _timed_run(storage, SCALE_TRIALS, strategy)
                wall = time.perf_counter() - t0
                stored = len(search.study.get_trials(deepcopy=False))
                medians[strategy] = {}
                for n in SCALE_AT:
                    if n > SCALE_TRIALS:
                        continue
                    ms = medians[strategy][n] = float(np.median(gaps[n - WINDOW : n - 1])) * 1e3
                    target = "<= 2" if n == 100_000 and strategy == "nsga2" else ""
                    out.append(
                        Figure(
                            f"search_scale.engine.{kind}.{strategy}.{n // 1000}k_trials",
                            ms,
                            "ms/trial",
                            f"median gap between results {n - WINDOW}..{n}, {strategy}, "
                            f"1 worker, {kind} storage; whole run of {SCALE_TRIALS} {wall:.0f} s",
                            target,
                            bool(ms <= 2) if target else None,
                        )
                    )
                if strategy == "nsga2":
                    out.append(
                        Figure(
                            f"search_scale.engine.{kind}.stored_not_results",
                            float(stored - len(search.results)),
                            "trials",
                            f"trials stored that are not results, of {stored} after "
                            f"{SCALE_TRIALS} (nsga2)",
                            "== 0",
                            stored == len(search.results),
                        )
                    )
            for n, ms in medians["nsga2"].items():
                out.append(
                    Figure(
                        f"search_scale.engine.{kind}.nsga2_over_random.{n // 1000}k_trials",
                        ms / medians["random"][n],
                        "x",
                        f"nsga2's cost per trial over random's at {n} trials ({kind}, same run)",
                    )
                )
    return out


# ---- 2. worker processes -----------------------------------------------------------------------
def _burn(arch) -> dict[str, float]:
    total = 0
    for i in range(700_000):  # ~40 ms of pure Python on one core
        total += i * i % 7
    return {"a": float(arch["x0"] + total % 2), "b": float(arch["x1"])}


def _process(storage: str, budget: int, go, ready, done) -> None:
    search = Search(
        _burn, BIG, objectives=[("a", "minimize"), ("b", "minimize")], strategy="random",
        budget=budget, storage=storage,
    )  # fmt: skip
    ready.put(os.getpid())
    go.wait()
    search.run()
    done.put(time.perf_counter())


def _plain(evaluations: int, go, ready, done) -> None:
    """The machine's own ceiling: ``evaluations`` calls of ``_burn`` with no search around them."""
    ready.put(os.getpid())
    go.wait()
    for i in range(evaluations):
        _burn({"x0": i % 10, "x1": 0})
    done.put(time.perf_counter())


def _wall(processes: int, budget: int, tmp: str, plain: bool = False) -> float:
    """Wall time from the start signal until the last of ``processes`` processes finished
    ``budget`` evaluations between them: Search processes sharing one journal study, or (with
    ``plain``) processes that split the budget and only call the evaluation."""
    ctx = multiprocessing.get_context("spawn")
    storage = str(Path(tmp) / f"p{processes}-{time.monotonic_ns()}.journal")
    go, ready, done = ctx.Event(), ctx.Queue(), ctx.Queue()
    if plain:
        shares = [budget // processes + (i < budget % processes) for i in range(processes)]
        procs = [ctx.Process(target=_plain, args=(n, go, ready, done)) for n in shares]
    else:
        Search(_burn, BIG, objectives=[("a", "minimize"), ("b", "minimize")], storage=storage)
        procs = [
            ctx.Process(target=_process, args=(storage, budget, go, ready, done))
            for _ in range(processes)
        ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=600)
    t0 = time.perf_counter()
    go.set()
    ends = [done.get(timeout=1200) for _ in procs]
    for p in procs:
        p.join()
    if not plain:
        results = Search.load(storage).results
        assert len(results) == budget and not results[list(BIG.names)].duplicated().any()
    return max(ends) - t0


def worker_processes(budget: int = 60) -> list[Figure]:
    """nasviz's speed-up from a second worker process next to the machine's own: the same
    evaluations split over plain processes, in the same interleaved rounds."""
    walls: dict[tuple[int, bool], list[float]] = {(n, p): [] for n in (1, 2) for p in (0, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(ROUNDS):
            for n, plain in walls:  # interleaved: load from other processes hits all alike
                walls[n, plain].append(_wall(n, budget, tmp, bool(plain)))
    speedup = {
        plain: [a / b for a, b in zip(walls[1, plain], walls[2, plain], strict=True)]
        for plain in (0, 1)
    }
    ratio, machine = statistics.median(speedup[0]), statistics.median(speedup[1])
    per_eval = statistics.median(walls[1, 1]) / budget * 1e3
    rounds = lambda xs: [round(x, 2) for x in xs]  # noqa: E731
    return [
        Figure(
            "search_scale.processes.speedup_2_vs_1",
            ratio,
            "x",
            f"wall time of {budget} CPU-bound evaluations ({per_eval:.0f} ms each alone), 1 "
            f"search process vs 2 on one journal study, {os.cpu_count()} cores; per round "
            f"{rounds(speedup[0])}; 1 process {statistics.median(walls[1, 0]):.2f} s, 2 "
            f"processes {statistics.median(walls[2, 0]):.2f} s; the machine's own speed-up "
            f"for the same work in plain processes: {machine:.2f}x",
            ">= 1.8",
            ratio >= 1.8,
        ),
        Figure(
            "search_scale.processes.machine_speedup_2_vs_1",
            machine,
            "x",
            f"the ceiling: the same {budget} evaluations split over 1 vs 2 plain processes (no "
            f"search, no storage), same rounds; per round {rounds(speedup[1])}",
        ),
        Figure(
            "search_scale.processes.share_of_machine_speedup",
            ratio / machine,
            "x",
            "nasviz's 2-vs-1 speed-up over the machine's (1.0: a second worker gains all the "
            "machine allows)",
        ),
    ]


# ---- 3. PostgreSQL -------------------------------------------------------------------------------
def _postgres_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "nasviz_test_postgres", Path(__file__).parent.parent / "tests" / "search" / "postgres.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def postgres() -> list[Figure]:
    pg = _postgres_module()
    reason = pg.missing()
    if reason:
        return [Figure("search_scale.postgres.5k_trials", float("nan"), "ms/trial", reason)]
    with pg.running_postgres() as server, pg.fresh_database(server) as url:
        t0 = time.perf_counter()
        search, gaps = _timed_run(url, PG_TRIALS)
        wall = time.perf_counter() - t0
        frame = search.results
    per = (wall - frame["duration"].sum()) / PG_TRIALS * 1e3
    tail = float(np.mean(gaps[-WINDOW:])) * 1e3
    return [
        Figure(
            f"search_scale.postgres.{PG_TRIALS // 1000}k_trials",
            per,
            "ms/trial",
            f"(wall - evaluation time) / trials, default strategy, 1 worker, local PostgreSQL "
            f"(fsync off); mean gap over the last {WINDOW}: {tail:.2f} ms",
            "<= 10",
            per <= 10,
        )
    ]


# ---- 4. multi-fidelity ---------------------------------------------------------------------------
MLP_SPACE = SearchSpace(
    {"depth": [1, 2, 3], "width": [8, 16, 32, 64, 128], "lr": [0.001, 0.003, 0.01, 0.03, 0.1]}
)


def _mlp(arch) -> torch.nn.Module:
    torch.manual_seed(int(hashlib.sha256(json.dumps(dict(arch)).encode()).hexdigest()[:8], 16))
    layers, width = [], 64
    for _ in range(arch["depth"]):
        layers += [torch.nn.Linear(width, arch["width"]), torch.nn.ReLU()]
        width = arch["width"]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))


def _curve(arch) -> list[float]:
    """Validation error (%) after each of ``EPOCHS`` epochs of Adam (batch 64)."""
    from nasviz.data import digits

    data = digits(seed=0, flat=True)
    model = _mlp(arch)
    opt = torch.optim.Adam(model.parameters(), lr=arch["lr"])
    X, y = data.train.X, data.train.y
    gen = torch.Generator().manual_seed(0)
    errors = []
    for _ in range(EPOCHS):
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            errors.append(float((model(data.val.X).argmax(1) != data.val.y).float().mean() * 100))
    return errors


def _curves() -> dict:
    """Every arch's training curve, cached (75 archs x 27 epochs, about a minute)."""
    key = hashlib.sha256(
        (json.dumps(MLP_SPACE.to_json()) + torch.__version__ + str(EPOCHS)).encode()
    ).hexdigest()[:12]
    path = CACHE / f"mlp_curves-{key}.json"
    if not path.exists():
        torch.set_num_threads(1)
        curves = {json.dumps(dict(a)): _curve(a) for a in MLP_SPACE}
        CACHE.mkdir(exist_ok=True)
        path.write_text(json.dumps(curves))
    return {MLP_SPACE.validate(json.loads(k)): v for k, v in json.loads(path.read_text()).items()}


def _params(arch) -> float:
    return float(sum(p.numel() for p in _mlp(arch).parameters()))


def _fidelity_run(curves: dict, halving: bool, seed: int, ref, best: float) -> float:
    """Epochs spent until the completed trials' hypervolume reaches ``GOAL`` of ``best``."""
    spent = [0]
    front = np.zeros((0, 2))
    reached: list[int] = []

    def fn(arch, report):
        curve, size = curves[arch], _params(arch)
        for epoch, error in enumerate(curve, start=1):
            spent[0] += 1
            report(epoch, {"val_error": error, "params": size})
        return {"val_error": curve[-1], "params": size}

    search = Search(
        fn, MLP_SPACE, objectives=[("val_error", "minimize"), ("params", "minimize")],
        strategy="random", budget=MLP_SPACE.size, storage=":memory:", seed=seed,
        pruner=SuccessiveHalving(min_step=1, eta=3, max_step=EPOCHS) if halving else None,
    )  # fmt: skip

    def watch(event) -> None:
        nonlocal front
        if event.kind != "result" or event.data["state"] != "COMPLETE" or reached:
            return
        front = np.vstack([front, [[event.data["val_error"], event.data["params"]]]])
        if hypervolume(front, ["minimize"] * 2, ref) >= GOAL * best:
            reached.append(spent[0])
            search.stop(wait=False)

    search.subscribe(watch)
    search.run()
    return float(reached[0]) if reached else float(spent[0] + 1)


def fidelity() -> list[Figure]:
    curves = _curves()
    values = np.array([[c[-1], _params(a)] for a, c in curves.items()])
    front = values[pareto_mask(values, ["minimize"] * 2)]
    ref = default_reference(front, ["minimize"] * 2)
    best = hypervolume(front, ["minimize"] * 2, ref)
    spent = {
        h: [_fidelity_run(curves, h, s, ref, best) for s in FIDELITY_SEEDS] for h in (False, True)
    }
    ratios = [f / h for f, h in zip(spent[False], spent[True], strict=True)]
    ratio = statistics.median(spent[False]) / statistics.median(spent[True])
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return [
        Figure(
            "search_scale.fidelity.full_vs_halving_epochs",
            ratio,
            "x",
            f"median training epochs to {round(GOAL * 100)}% of the reference hv: full fidelity "
            f"{statistics.median(spent[False]):g} vs halving {statistics.median(spent[True]):g} "
            f"(per seed {spent[False]} vs {spent[True]}; per-seed ratio quartiles "
            f"{q1:.2f}-{q3:.2f}); 75 MLPs from scratch on digits, 27 epochs, random order, "
            f"{len(FIDELITY_SEEDS)} seeds",
            ">= 3",
            ratio >= 3,
        )
    ]


# ---- 5. zero-cost proxies ------------------------------------------------------------------------
def _proxy_figures(
    name: str, scores: dict[str, list[float]], accuracy: list[float]
) -> list[Figure]:
    out = []
    for proxy, values in scores.items():
        tau = kendalltau(values, accuracy).statistic
        out.append(
            Figure(
                f"search_scale.proxies.{name}.{proxy}_kendall_tau",
                float(tau),
                "tau",
                f"Kendall tau of {proxy} against trained accuracy, {len(accuracy)} archs ({name})",
            )
        )
    return out


def proxies() -> list[Figure]:
    from nasviz.data import digits

    torch.set_num_threads(1)
    data = digits(seed=0, flat=True)
    measures = [synflow((1, 64)), grad_norm(data), naswot(data)]
    curves = _curves()
    archs = list(curves)
    scores = {m.name: [m(_mlp(a)) for a in archs] for m in measures}
    out = _proxy_figures("mlp_from_scratch", scores, [100 - curves[a][-1] for a in archs])

    from bench import bench_search  # the supernet table (trained with its defaults)
    from nasviz.supernet import FAMILIES

    spec = bench_search.MLP
    table = bench_search.load_table(spec, bench_search.table_file(spec))
    distinct = list(dict.fromkeys(map(table.canonical or (lambda a: a), table.space)))
    accuracy = [float(table.values["accuracy"][table.index[a]]) for a in distinct]
    torch.manual_seed(spec.seed)
    untrained = FAMILIES[spec.family].for_data(bench_search._data(spec), **dict(spec.options))
    trained, _ = bench_search._trained(spec)
    for label, net in (("supernet_table_init", untrained), ("supernet_table_trained", trained)):
        scores = {m.name: [m(net, a) for a in distinct] for m in measures}
        out += _proxy_figures(label, scores, accuracy)
    return out


def run() -> list[Figure]:
    return engine_cost() + worker_processes() + postgres() + fidelity() + proxies()


if __name__ == "__main__":
    from bench._report import table

    print(table(run()))
