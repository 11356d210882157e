"""``python -m bench [NAME ...]``: runs bench/bench_*.py (or the named ones), prints a table and
writes every figure to bench/results.json (merged with figures of benchmarks not run now)."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

from bench._report import Figure, table, write_json

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"


def main(
    argv: list[str], results: Path = RESULTS, folder: Path = HERE, package: str = "bench"
) -> int:
    """Runs the named benchmarks (all when ``argv`` is empty); returns the exit status.

    Args:
        argv: benchmark names (``prune`` for ``bench_prune.py``); unknown names exit 2.
        results: the JSON file written; running only some benchmarks keeps the figures of the
            others that it already holds (figures are named ``"<benchmark>.<what>"``; a rerun
            benchmark's old figures are replaced, stale ones included).
        folder, package: where the ``bench_*.py`` modules are and the package importing them
            (tests point these at a temporary package).
    """
    names = sorted(p.stem[len("bench_") :] for p in folder.glob("bench_*.py"))
    chosen = argv or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {names}", file=sys.stderr)
        return 2
    figures: list[Figure] = []
    for name in chosen:
        t0 = time.perf_counter()
        print(f"== bench {name}", flush=True)
        got = importlib.import_module(f"{package}.bench_{name}").run()
        figures += got
        print(table(got), flush=True)
        print(f"   ({time.perf_counter() - t0:.1f} s)\n", flush=True)
    previous = []
    if results.exists() and argv:  # keep the figures of benchmarks not run now
        done = {f.name for f in figures}
        previous = [
            Figure(**d)
            for d in json.loads(results.read_text())
            if d["name"] not in done and d["name"].split(".")[0] not in chosen
        ]
    everything = sorted(previous + figures, key=lambda f: f.name)
    write_json(everything, results)
    print(table(everything))
    shown = results.relative_to(Path.cwd()) if results.is_relative_to(Path.cwd()) else results
    print(f"\nwrote {len(everything)} figures to {shown}")
    missed = [f.name for f in everything if f.met is False]
    if missed:
        print(f"targets not met: {missed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
