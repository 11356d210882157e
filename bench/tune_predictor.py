"""Tunes the predictor strategy's defaults on tables the benchmark never reports on.

``.venv/bin/python -m bench.tune_predictor [--seeds N] [--tables mlp,cnn] [--build-only]``
(not run by ``make bench``: only ``bench_*.py`` modules are benchmarks).

``bench/bench_search.py`` reports sample efficiency on exhaustive tables of two supernets
trained with seed 0 on digits split with seed 0. Tuning on those tables (even with other search
seeds) would fit the defaults to the very tables the figures come from, so this script tunes on
*other* tables: the same families and spaces, trained with supernet seed 1 on digits split with
seed 1 (so other weights, another training set and another validation set), plus a two-stage
ElasticCNN trained the same way (a smaller CNN space). Tables are built and cached exactly as the
benchmark's (``bench_search.table_file``; the full ElasticCNN table costs about an hour of CPU
the first time, the others a few minutes).

Every candidate setting in :data:`CANDIDATES` searches each tuning table with search seeds
100-109 (the benchmark uses 0-9) and stops once it reaches 95% of the table's reference
hypervolume (or at the cap, counted as cap + 1). The score of a setting is the geometric mean
over the tables of its median evaluations to that goal (lower is better); the script prints
every setting's medians and quartiles per table, and the best one against the current default.
Its output is what the predictor's default constants (``nasviz/search/_predictor.py``) follow.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import statistics
import time
from pathlib import Path

import torch

from bench.bench_search import (
    CACHE,
    CAP,
    CNN,
    GOAL,
    MLP,
    TableSpec,
    _processes,
    evals_to,
    load_table,
    table_file,
    table_run,
)

#: The tuning tables: the benchmark's families and spaces with another supernet seed and
#: split, and a two-stage ElasticCNN (729 archs: a CNN table that costs minutes, not an hour).
TUNE_TABLES = {
    "mlp": TableSpec(
        "mlp_tune", MLP.family, MLP.options, MLP.flat, seed=1, data_seed=1, val=MLP.val
    ),
    "cnn_small": TableSpec(
        "cnn_small_tune",
        CNN.family,
        (("stage_channels", (16, 24)), ("strides", (2, 2))),
        CNN.flat,
        seed=1,
        data_seed=1,
        val=CNN.val,
        calibration_samples=CNN.calibration_samples,
    ),
    "cnn": TableSpec(
        "cnn_tune",
        CNN.family,
        CNN.options,
        CNN.flat,
        seed=1,
        data_seed=1,
        val=CNN.val,
        calibration_samples=CNN.calibration_samples,
    ),
}
#: Search seeds used while tuning (the benchmark reports seeds 0-9).
TUNE_SEEDS = tuple(range(100, 110))
#: Candidate settings: the two that shape the cycle (archs per batch, random archs before the
#: first predictor), each varied around the default (8, 16) on its own.
CANDIDATES = tuple(
    {"batch_size": b, "initial": i} for b, i in ((8, 16), (4, 16), (16, 16), (8, 8), (8, 32))
)

_TABLES: dict = {}
#: Every finished tuning run: "<table file>|<candidate>|<seed>" -> evaluations to the goal.
RUNS = CACHE / "tune_runs.json"


def _needed(task: tuple[TableSpec, str, tuple[tuple[str, int], ...], int]) -> int:
    """Evaluations one predictor run needed to reach ``GOAL`` (worker process)."""
    spec, path, options, seed = task
    torch.set_num_threads(1)
    if path not in _TABLES:
        _TABLES[path] = load_table(spec, path)
    trace = table_run(_TABLES[path], "predictor", seed, dict(options), min_evals=0)
    return evals_to(trace, GOAL, CAP)


def _label(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def _key(task: tuple) -> str:
    _, path, options, seed = task
    return f"{Path(path).name}|{_label(dict(options))}|{seed}"


def tune(tables: list[str], seeds: tuple[int, ...]) -> dict[str, dict]:
    """Every candidate's evaluations to the goal on every tuning table, by candidate label.
    Each run's result is kept in ``bench/_cache/tune_runs.json`` (keyed by table file,
    candidate and seed), so an interrupted tuning resumes where it stopped."""
    paths = {name: table_file(TUNE_TABLES[name]) for name in tables}
    tasks = [
        (TUNE_TABLES[name], paths[name], tuple(options.items()), seed)
        for options in CANDIDATES
        for name in tables
        for seed in seeds
    ]
    done = json.loads(RUNS.read_text()) if RUNS.exists() else {}
    todo = [t for t in tasks if _key(t) not in done]
    t0 = time.perf_counter()
    print(f"{len(tasks)} runs, {len(tasks) - len(todo)} of them done before", flush=True)
    with _processes() as pool:
        futures = {pool.submit(_needed, t): t for t in todo}
        for future in cf.as_completed(futures):
            done[_key(futures[future])] = future.result()
            RUNS.write_text(json.dumps(done, indent=0))
    print(f"{len(todo)} runs in {time.perf_counter() - t0:.0f} s")
    needed = [done[_key(t)] for t in tasks]
    out: dict[str, dict] = {}
    for (spec, _, options, _), n in zip(tasks, needed, strict=True):
        entry = out.setdefault(_label(dict(options)), {"options": dict(options), "runs": {}})
        entry["runs"].setdefault(spec.name, []).append(n)
    for entry in out.values():
        medians = [statistics.median(r) for r in entry["runs"].values()]
        entry["score"] = math.exp(statistics.mean(math.log(m) for m in medians))
    return out


def report(results: dict[str, dict], default: str) -> str:
    """A table of every candidate (best first) and the best one against the default."""
    lines = []
    for label, entry in sorted(results.items(), key=lambda kv: kv[1]["score"]):
        cells = []
        for table, runs in entry["runs"].items():
            q1, _, q3 = statistics.quantiles(runs, n=4)
            cells.append(f"{table} median {statistics.median(runs):g} [{q1:g}-{q3:g}]")
        mark = "  (current default)" if label == default else ""
        lines.append(f"{entry['score']:7.1f}  {label:<26} {'; '.join(cells)}{mark}")
    best = min(results, key=lambda k: results[k]["score"])
    ratio = results[default]["score"] / results[best]["score"]
    lines.append(f"best: {best} ({ratio:.2f}x fewer evaluations than the default {default})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tune_predictor", description=__doc__)
    parser.add_argument("--seeds", type=int, default=len(TUNE_SEEDS), help="search seeds")
    parser.add_argument(
        "--tables", default="mlp,cnn_small,cnn", help="comma-separated: mlp, cnn_small, cnn"
    )
    parser.add_argument("--build-only", action="store_true", help="build the tables, no search")
    args = parser.parse_args(argv)
    tables = [t for t in args.tables.split(",") if t]
    unknown = sorted(set(tables) - set(TUNE_TABLES))
    if unknown:
        parser.error(f"unknown table(s) {unknown}; known: {sorted(TUNE_TABLES)}")
    if args.build_only:
        for name in tables:
            print(f"{name}: {table_file(TUNE_TABLES[name])}")
        return 0
    from nasviz.search import PredictorStrategy

    current = PredictorStrategy()
    default = _label({"batch_size": current.batch_size, "initial": current.initial})
    results = tune(tables, TUNE_SEEDS[: args.seeds])
    if default not in results:
        raise SystemExit(f"the current default {default} is not among the candidates")
    print(report(results, default))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
