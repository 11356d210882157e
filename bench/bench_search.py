"""Search benchmarks: sample efficiency (random vs nsga2 vs predictor) on two real trained
supernets, ZDT1/ZDT2 hypervolume, and the engine's overhead per trial.

Sample efficiency is measured on exhaustive tables of two real supernets trained with
``train_supernet``'s defaults on digits (seeded, one torch thread): the default ``ElasticCNN``
(the supernet of notebook 01: 19,683 archs, all distinct subnets) and an ``ElasticMLP`` (widths
{16, 32, 48, 64, 96, 128} per layer, 1-4 layers: 5,184 archs, 1,554 distinct subnets). Every
distinct subnet was evaluated exactly as ``Search(net, objectives=[accuracy(val), macs(...)])``
evaluates it: validation accuracy with batch norm re-calibrated per subnet, exact MACs and
params. Validation is digits' validation and test splits together (539 images, 30%: fewer ties
than 269), trained on the other 70%; the CNN's batch norm is re-calibrated on 256 training
images per subnet (a quarter of ``train_supernet``'s default, which cuts the table's cost). A
table is cached under ``bench/_cache/`` keyed by a hash of the trained weights, the data and
the settings, so it is rebuilt (CNN: about an hour of CPU, spread over ``os.cpu_count()``
processes) exactly when what it depends on changes; the supernet is retrained on every run
(about a minute) to check that. Strategies then search a table by look-up, each with its
default settings.

Because the tables are exhaustive, the reference hypervolume is exact: the hypervolume of the
true Pareto front, with the reference point ``default_reference(true front)`` (the front's nadir
moved 10% of its range further). The predictor's defaults were first chosen on these tables
with search seeds 100-104 (never the reported ``SEEDS``) and re-checked on other tables by
``bench/tune_predictor.py`` (another supernet seed and digits split, search seeds 100-109).
Figures, each a median over ``SEEDS``, with quartiles (as figures of their own) and every seed's
figure: evaluations to reach 95% of the reference hypervolume (the issue's figure), and
the mean hypervolume fraction over the first ``AUC_EVALS`` evaluations (the area under the
hypervolume curve). A run that never reaches 95% is censored at its cap and counted as cap + 1,
so a ratio against it is a lower bound (said in the figure).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench._report import Figure
from nasviz.objectives import Objective
from nasviz.search import Search, default_reference, hypervolume, hypervolume_trace, pareto_mask
from nasviz.space import Arch, SearchSpace

# ---- real supernets, tabulated -------------------------------------------------------------
CACHE = Path(__file__).parent / "_cache"


@dataclass(frozen=True)
class TableSpec:
    """A benchmark supernet: how it is built, trained and evaluated (its table depends on all).

    Attributes:
        name: short name used in figure names and cache files.
        family: ``"ElasticMLP"`` or ``"ElasticCNN"``, built with ``for_data(data, **options)``.
        options: constructor keyword arguments besides the data's shape.
        flat: digits as 64 features (MLP) or 1x8x8 images (CNN).
        val: fraction of digits held out for evaluation: 0.3 is digits' validation and test
            splits together (539 images, so one image is 0.19 points of accuracy).
        calibration_samples: training images each subnet's batch norm is re-calibrated on
            (``train_supernet``'s option; its default is 1,000).
    """

    name: str
    family: str
    options: tuple[tuple[str, Any], ...] = ()
    flat: bool = False
    seed: int = 0
    data_seed: int = 0
    val: float = 0.3
    calibration_samples: int = 1000


MLP = TableSpec(
    "mlp", "ElasticMLP", (("widths", (16, 32, 48, 64, 96, 128)), ("depths", (1, 2, 3, 4))), True
)
CNN = TableSpec("cnn", "ElasticCNN", calibration_samples=256)


@dataclass(frozen=True)
class Table:
    """Every arch of a trained supernet, evaluated: arrays in the space's enumeration order."""

    spec: TableSpec
    space: SearchSpace
    canonical: Any  # the supernet's ``canonical``; None when every arch is its own subnet
    values: dict[str, np.ndarray]  # "accuracy", "macs", "params" -> (archs,)
    index: dict[Arch, int]

    @property
    def subnets(self) -> int:
        return (
            self.space.size if self.canonical is None else len(set(map(self.canonical, self.space)))
        )


def _processes() -> cf.ProcessPoolExecutor:
    """One worker process per CPU (fresh interpreters: torch and threads start clean)."""
    return cf.ProcessPoolExecutor(os.cpu_count(), mp_context=multiprocessing.get_context("spawn"))


def _data(spec: TableSpec):
    from nasviz.data import digits

    return digits(seed=spec.data_seed, val=spec.val, test=0.0, flat=spec.flat)


def _trained(spec: TableSpec):
    """The spec's supernet trained with ``train_supernet``'s defaults (seeded, one thread)."""
    from nasviz.supernet import FAMILIES, train_supernet

    data = _data(spec)
    torch.manual_seed(spec.seed)
    net = FAMILIES[spec.family].for_data(data, **dict(spec.options))
    train_supernet(net, data, seed=spec.seed, calibration_samples=spec.calibration_samples).run()
    return net.eval(), data


def _fingerprint(spec: TableSpec, net, data) -> str:
    """Hash of everything a table depends on: the trained weights, the calibration images, the
    evaluation split, the spec and torch's version."""
    h = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode())
    h.update(torch.__version__.split("+")[0].encode())
    tensors = [t for _, t in sorted(net.state_dict().items())]
    for t in [*tensors, net.calibration_inputs, data.val.X, data.val.y]:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _evaluate_chunk(checkpoint: str, spec: TableSpec, archs: list[dict]) -> list[float]:
    """Validation accuracy of each arch, in a worker process (one torch thread)."""
    from nasviz.objectives import evaluate_accuracy
    from nasviz.supernet import Supernet

    torch.set_num_threads(1)
    net, data = Supernet.load(checkpoint).eval(), _data(spec)
    return [evaluate_accuracy(net, data.val, arch) for arch in map(net.space.validate, archs)]


def _accuracies(spec: TableSpec, net, archs: list[Arch]) -> np.ndarray:
    """Validation accuracy of every arch, in ``os.cpu_count()`` worker processes."""
    chunks = [archs[i : i + 256] for i in range(0, len(archs), 256)]
    out: list[float] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = str(net.save(Path(tmp) / "net.pt"))
        with _processes() as pool:
            futures = [
                pool.submit(_evaluate_chunk, checkpoint, spec, [dict(a) for a in c]) for c in chunks
            ]
            for future in futures:
                out += future.result()
                left = (time.perf_counter() - t0) / len(out) * (len(archs) - len(out)) / 60
                print(
                    f"   {spec.name} table: {len(out)}/{len(archs)}, ~{left:.0f} min left",
                    flush=True,
                )
    return np.array(out)


def _macs(spec: TableSpec, net, archs: list[Arch]) -> np.ndarray:
    """Exact MACs (``count_macs``) of every arch. ElasticCNN's stages have fixed input and
    output shapes, so its MACs are the smallest arch's plus each stage's own change: counted
    once per stage setting (81 counts instead of 19,683), checked against direct counts."""
    from nasviz.objectives import count_macs

    shape = (1, *_data(spec).input_shape)
    if spec.family != "ElasticCNN":
        return np.array([float(count_macs(net, shape, a)) for a in archs])
    base = net.space.smallest()
    stages = sorted({name.split(".")[1] for name in net.space.names})
    memo: dict[Arch, float] = {}

    def count(arch: Arch) -> float:
        if arch not in memo:
            memo[arch] = float(count_macs(net, shape, arch))
        return memo[arch]

    def additive(arch: Arch) -> float:
        own = [{k: arch[k] for k in arch if k.endswith(f".{s}")} for s in stages]
        return count(base) + sum(count(base.replace(**o)) - count(base) for o in own)

    rng = np.random.default_rng(0)
    for i in rng.choice(len(archs), 32, replace=False):
        if additive(archs[i]) != float(count_macs(net, shape, archs[i])):
            raise RuntimeError(f"MACs of {dict(archs[i])} are not additive over stages")
    return np.array([additive(a) for a in archs])


def _check_rows(spec: TableSpec, net, data, archs: list[Arch], rows: np.ndarray) -> None:
    """A few rows against ``Search``'s own evaluation of those archs, in this process."""
    from nasviz.objectives import count_macs, evaluate_accuracy

    shape = (1, *data.input_shape)
    for i in np.random.default_rng(1).choice(len(archs), 12, replace=False):
        real = (
            evaluate_accuracy(net, data.val, archs[i]),
            float(count_macs(net, shape, archs[i])),
            float(net.count_params(archs[i])),
        )
        if tuple(rows[i]) != real:
            raise RuntimeError(
                f"{spec.name} table: {dict(archs[i])} is {tuple(rows[i])}, not {real}"
            )


def table_file(spec: TableSpec) -> Path:
    """The cached table of the spec's supernet: the supernet is trained (about a minute) and
    its table taken from ``bench/_cache/`` when one of the same trained net is there, else every
    distinct subnet is evaluated (in ``os.cpu_count()`` processes) and the table cached (npz,
    rows in the order of the distinct subnets in ``space``, no pickles). Either way a few rows are
    checked against a direct evaluation in this process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same floating-point results on any machine
    try:
        net, data = _trained(spec)
        path = CACHE / f"{spec.name}_table-{_fingerprint(spec, net, data)}.npz"
        distinct = _distinct(net)
        if not path.exists():
            params = [float(net.count_params(a)) for a in distinct]
            rows = np.column_stack(
                [_accuracies(spec, net, distinct), _macs(spec, net, distinct), params]
            )  # (subnets, 3)
            CACHE.mkdir(exist_ok=True)
            np.savez(path, rows=rows)
        with np.load(path, allow_pickle=False) as f:
            _check_rows(spec, net, data, distinct, f["rows"])
    finally:
        torch.set_num_threads(threads)
    return path


def _distinct(net) -> list[Arch]:
    """One arch per distinct subnet (its canonical form), in the space's order."""
    return list(dict.fromkeys(net.canonical(a) for a in net.space))


def load_table(spec: TableSpec, path: Path) -> Table:
    """A table file as every arch's values (an untrained net of the spec gives the space)."""
    from nasviz.supernet import FAMILIES

    net = FAMILIES[spec.family].for_data(_data(spec), **dict(spec.options))
    with np.load(path, allow_pickle=False) as f:
        rows = f["rows"]  # (subnets, 3)
    where = {arch: i for i, arch in enumerate(_distinct(net))}
    archs = list(net.space)
    full = rows[[where[net.canonical(a)] for a in archs]]  # (archs, 3)
    values = dict(zip(("accuracy", "macs", "params"), full.T, strict=True))
    canonical = net.canonical if len(where) < len(archs) else None  # None: no equivalents
    return Table(spec, net.space, canonical, values, {a: i for i, a in enumerate(archs)})


# ---- sample efficiency on a table ----------------------------------------------------------
STRATEGIES = ("random", "nsga2", "predictor")  # each with its default settings
#: Search seeds (the predictor's defaults were chosen with seeds 100-104, re-checked with
#: 100-109 on other tables).
SEEDS = tuple(range(10))
#: Fraction of the reference hypervolume to reach (the issue's figure).
GOAL = 0.95
#: The area under the hypervolume curve is the mean hypervolume fraction over this many evals.
AUC_EVALS = 200
#: Evaluations at most per run of a guided strategy (a goal not reached by then counts as
#: CAP + 1); random search costs nothing per step and may run through the whole space.
CAP = 1000
DIRECTIONS = ["maximize", "minimize"]  # accuracy, MACs


def reference(table: Table) -> tuple[np.ndarray, float]:
    """The reference point (the true front's nadir moved 10% of its range further) and the
    reference hypervolume (the true front's), in (accuracy, MACs)."""
    values = np.column_stack([table.values["accuracy"], table.values["macs"]])
    front = values[pareto_mask(values, DIRECTIONS)]
    ref = default_reference(front, DIRECTIONS)
    return ref, hypervolume(front, DIRECTIONS, ref)


def cap(table: Table, strategy: str) -> int:
    """Evaluations at most for ``strategy``: ``CAP``, or every subnet for random search."""
    return table.space.size if strategy == "random" else CAP


def table_run(
    table: Table,
    strategy: str,
    seed: int,
    options: dict | None = None,
    min_evals: int = AUC_EVALS,
) -> np.ndarray:
    """One search of ``table`` by look-up (accuracy expensive, MACs cheap); returns the fraction
    of the reference hypervolume after each evaluation. The run stops once it has reached
    ``GOAL`` and made ``min_evals`` evaluations, or at its ``cap``."""
    acc, macs = table.values["accuracy"], table.values["macs"]
    index = table.index
    ref, best = reference(table)
    search = Search(
        lambda arch: {"accuracy": float(acc[index[arch]])},
        space=table.space,
        objectives=[
            ("accuracy", "maximize"),
            Objective("macs", "minimize", lambda _, arch: float(macs[index[arch]]), cheap=True),
        ],
        strategy=strategy,
        budget=cap(table, strategy),
        storage=":memory:",
        seed=seed,
        strategy_options=options,
        canonical=table.canonical,
    )
    front = np.zeros((0, 2))
    trace: list[float] = []

    def watch(event) -> None:
        nonlocal front
        if event.kind != "result":
            return
        point = np.array([[event.data["accuracy"], event.data["macs"]]])
        front = np.vstack([front, point])
        front = front[pareto_mask(front, DIRECTIONS)]
        trace.append(hypervolume(front, DIRECTIONS, ref) / best)
        if trace[-1] >= GOAL and len(trace) >= min_evals:
            search.stop(wait=False)  # takes effect after this evaluation

    search.subscribe(watch)
    if search.run().state == "failed":
        raise RuntimeError(f"{strategy} search failed:\n{search.traceback}")
    return np.array(trace)


_TABLES: dict[Path, Table] = {}


def _run_task(task: tuple[TableSpec, Path, str, int]) -> np.ndarray:
    """``table_run`` in a worker process (tables loaded once per process)."""
    spec, path, strategy, seed = task
    torch.set_num_threads(1)
    if path not in _TABLES:
        _TABLES[path] = load_table(spec, path)
    return table_run(_TABLES[path], strategy, seed)


def evals_to(trace: np.ndarray, goal: float, limit: int) -> int:
    """Evaluations a run needed to reach ``goal`` (``limit + 1``: not reached)."""
    hit = np.flatnonzero(trace >= goal)
    return int(hit[0]) + 1 if len(hit) else limit + 1


def _speedup(needed: dict, base: str, limit: dict, target: float) -> list[Figure]:
    """Median ``base`` evals / median predictor evals to ``GOAL``, with the spread of the
    per-seed ratios (their quartiles as figures too). A censored baseline median (not reached
    by its cap) makes the ratio a lower bound (met if even that bound meets the target); a
    censored predictor median makes it unknown (not met)."""
    med = {s: statistics.median(needed[s]) for s in (base, "predictor")}
    ratio = med[base] / med["predictor"]
    unknown = med["predictor"] > limit["predictor"]
    note = " (predictor censored: unknown)" if unknown else ""
    note = note or (" (lower bound: censored at the cap)" if med[base] > limit[base] else "")
    paired = [b / p for b, p in zip(needed[base], needed["predictor"], strict=True)]
    q1, q2, q3 = statistics.quantiles(paired, n=4)
    name = f"predictor_vs_{base}"
    return [
        Figure(
            name,
            ratio,
            "x",
            f"median {base} evals / median predictor evals to {round(GOAL * 100)}% of the "
            f"reference hv{note}; per-seed ratios: median {q2:.2f}, quartiles {q1:.2f}-{q3:.2f}, "
            f"lowest {min(paired):.2f}",
            f">= {target}",
            bool(ratio >= target and not unknown),
        ),
        Figure(f"{name}.q1", q1, "x", f"lower quartile of the per-seed ratios{note}"),
        Figure(f"{name}.q3", q3, "x", f"upper quartile of the per-seed ratios{note}"),
    ]


def sample_efficiency(spec: TableSpec, seeds: tuple[int, ...] = SEEDS) -> list[Figure]:
    """Median evaluations to ``GOAL``, area under the hv curve and the predictor's speed-ups,
    for every strategy on ``spec``'s table."""
    path = table_file(spec)
    table = load_table(spec, path)
    tasks = [(spec, path, s, seed) for s in STRATEGIES for seed in seeds]
    with _processes() as pool:
        done = list(pool.map(_run_task, tasks))
    traces = {
        s: [t for (_, _, n, _), t in zip(tasks, done, strict=True) if n == s] for s in STRATEGIES
    }
    limit = {s: cap(table, s) for s in STRATEGIES}
    values = np.column_stack([table.values["accuracy"], table.values["macs"]])
    on_front = values[pareto_mask(values, DIRECTIONS)]
    points = len(np.unique(on_front, axis=0))
    about = (
        f"{spec.name} table ({table.space.size} archs, {table.subnets} distinct subnets, "
        f"{points} on the true front); median over {len(seeds)} seeds"
    )
    needed = {s: [evals_to(t, GOAL, limit[s]) for t in traces[s]] for s in STRATEGIES}
    out = [
        Figure(
            "true_front_points",
            points,
            "points",
            f"distinct (accuracy, MACs) points on the table's true Pareto front, "
            f"{len(on_front)} archs; a search must find (nearly) all of them to reach "
            f"{round(GOAL * 100)}% of the reference hv",
        )
    ]
    for s in STRATEGIES:
        q1, _, q3 = statistics.quantiles(needed[s], n=4)
        goal = f"evals_to_{round(GOAL * 100)}pct_hv.{s}"
        out += [
            Figure(
                goal,
                statistics.median(needed[s]),
                "evals",
                f"{about} (quartiles {q1:g}-{q3:g}; per seed {needed[s]}; cap {limit[s]}, "
                f"{limit[s] + 1}: not reached)",
            ),
            Figure(f"{goal}.q1", q1, "evals", f"lower quartile over {len(seeds)} seeds"),
            Figure(f"{goal}.q3", q3, "evals", f"upper quartile over {len(seeds)} seeds"),
        ]
    for base, target in (("random", 3.0), ("nsga2", 1.5)):
        out += _speedup(needed, base, limit, target)
    for s in STRATEGIES:
        auc = [float(np.mean(t[:AUC_EVALS])) for t in traces[s]]
        out.append(
            Figure(
                f"hv_auc_{AUC_EVALS}.{s}",
                statistics.median(auc),
                "fraction",
                f"mean fraction of the reference hv over the first {AUC_EVALS} evaluations; {about}",
            )
        )
    return [replace(f, name=f"search.{spec.name}_table.{f.name}") for f in out]


# ---- ZDT1 / ZDT2, 10 dims, 101 levels each -------------------------------------------------
ZDT_SPACE = SearchSpace({f"x{i}": [round(j / 100, 2) for j in range(101)] for i in range(10)})
ZDT_REF = (1.1, 11.0)
ZDT_SEEDS = (0, 1, 2, 3, 4)
#: Larger batches than the defaults for the 1,000-evaluation runs (fewer predictor cycles).
ZDT_OPTIONS = {"random": {}, "nsga2": {"population_size": 40}, "predictor": {"batch_size": 20}}


def _zdt_g(x: np.ndarray) -> float:
    return 1 + 9 * float(x[1:].mean())


def zdt1(arch) -> dict[str, float]:
    x = np.array(list(arch.values()))
    g = _zdt_g(x)
    return {"f1": float(x[0]), "f2": float(g * (1 - np.sqrt(x[0] / g)))}


def zdt2(arch) -> dict[str, float]:
    x = np.array(list(arch.values()))
    g = _zdt_g(x)
    return {"f1": float(x[0]), "f2": float(g * (1 - (x[0] / g) ** 2))}


def zdt_front_hv(problem) -> float:
    """Hypervolume of the discretized problem's true front: x0 at each level, the rest 0."""
    levels = ZDT_SPACE.dims["x0"]
    rest = {f"x{i}": 0.0 for i in range(1, 10)}
    front = np.array([list(problem({"x0": v, **rest}).values()) for v in levels])
    return hypervolume(front, ["minimize"] * 2, ZDT_REF)


def _zdt_trace(task: tuple[str, str, int]) -> np.ndarray:
    """Hypervolume fraction after each of 1,000 evaluations of one ZDT run (worker process)."""
    name, strategy, seed = task
    problem = {"zdt1": zdt1, "zdt2": zdt2}[name]
    search = Search(
        problem,
        space=ZDT_SPACE,
        objectives=[("f1", "minimize"), ("f2", "minimize")],
        strategy=strategy,
        budget=1000,
        storage=":memory:",
        seed=seed,
        strategy_options=ZDT_OPTIONS[strategy],
    )
    search.run()
    values = search.results[["f1", "f2"]].to_numpy()
    return hypervolume_trace(values, ["minimize"] * 2, ZDT_REF) / zdt_front_hv(problem)


def zdt() -> list[Figure]:
    """Hypervolume at 200 and 1,000 evaluations as a fraction of the discretized true front's,
    median over ``ZDT_SEEDS``; 101 levels per dimension, so no strategy can find the whole
    101-point front in 200 evaluations and the 1,000-evaluation figure shows who keeps closing
    the gap."""
    tasks = [(p, s, seed) for p in ("zdt1", "zdt2") for s in ZDT_OPTIONS for seed in ZDT_SEEDS]
    with _processes() as pool:
        traces = dict(zip(tasks, pool.map(_zdt_trace, tasks), strict=True))
    out = []
    for problem in ("zdt1", "zdt2"):
        best = zdt_front_hv({"zdt1": zdt1, "zdt2": zdt2}[problem])
        for s in ZDT_OPTIONS:
            for n in (200, 1000):
                fractions = [float(traces[problem, s, seed][n - 1]) for seed in ZDT_SEEDS]
                out.append(
                    Figure(
                        f"search.{problem}.hv_at_{n}.{s}",
                        statistics.median(fractions),
                        "fraction",
                        f"of the discretized true front's hv {best:.4f} (ref {ZDT_REF}); median "
                        f"over seeds {ZDT_SEEDS} (per seed {[round(f, 4) for f in fractions]})",
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
                search.run()
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
    return sample_efficiency(CNN) + sample_efficiency(MLP) + zdt() + overhead()


if __name__ == "__main__":
    from bench._report import table

    print(table(run()))
