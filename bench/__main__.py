"""``python -m bench [NAME ...]``: runs bench/bench_*.py (or the named ones), prints a table and
writes every figure to bench/results.json (merged with figures of benchmarks not run now)."""

from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench._report import Figure, table, write_json

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"


def main(argv: list[str]) -> int:
    names = sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))
    chosen = argv or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {names}", file=sys.stderr)
        return 2
    figures: list[Figure] = []
    for name in chosen:
        t0 = time.perf_counter()
        print(f"== bench {name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        got = module.run()
        figures += got
        print(table(got), flush=True)
        print(f"   ({time.perf_counter() - t0:.1f} s)\n", flush=True)
    previous = []
    if RESULTS.exists() and argv:
        done = {f.name for f in figures}
        previous = [Figure(**d) for d in json.loads(RESULTS.read_text()) if d["name"] not in done]
    everything = sorted(previous + figures, key=lambda f: f.name)
    write_json(everything, RESULTS)
    print(table(everything))
    print(
        f"\nwrote {len(everything)} figures to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}"
    )
    missed = [asdict(f)["name"] for f in everything if f.met is False]
    if missed:
        print(f"targets not met: {missed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
