"""``python -m bench``: runs the benchmarks and keeps their figures with their provenance.

Usage::

    python -m bench [NAME ...]        run bench/bench_*.py (or the named ones), print a table,
                                      write every figure to bench/results.json
    python -m bench --check [NAME ...]  (after running the named ones, if any) exit 1 when a
                                      figure in results.json misses its target or a figure the
                                      README quotes differs from it; lists them, and the
                                      quoted figures still pending (not recorded yet)
    python -m bench --quote           rewrite the figures README.md quotes from results.json
                                      (at their quoted precision), after a re-run

Each figure in results.json records the commit, date, machine and command that made it (see
``bench/_report.py``). Running only some benchmarks replaces only their figures; figures of the
others are kept and marked ``older`` when made at another commit. ``make bench`` runs them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench._quotes import pending, problems, requote
from bench._report import (
    Entry,
    Figure,
    Provenance,
    git_state,
    load_average,
    machine,
    made,
    merge,
    missed,
    now,
    read_results,
    table,
    write_results,
)

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"
README = HERE.parent / "README.md"


def _run(chosen: list[str], argv: list[str], package: str) -> tuple[list[Entry], set[str]]:
    """Runs the benchmarks ``chosen``; their figures stamped with provenance."""
    commit, dirty = git_state()
    command = " ".join(["python -m bench", *argv])
    host = machine()
    entries: list[Entry] = []
    for name in chosen:
        start, load0, t0 = now(), load_average(), time.perf_counter()
        print(f"== bench {name}", flush=True)
        got: list[Figure] = importlib.import_module(f"{package}.bench_{name}").run()
        seconds = time.perf_counter() - t0
        loads = tuple(v for v in (load0, load_average()) if v is not None)
        provenance = Provenance(commit, dirty, start, command, host, loads, round(seconds, 1))
        entries += [Entry(f, provenance) for f in got]
        print(table(got), flush=True)
        print(f"   ({seconds:.1f} s, load {'/'.join(map(str, loads)) or '?'})\n", flush=True)
    return entries, set(chosen)


def check(results: Path, readme: Path | None, benches: set[str] | None = None) -> int:
    """1 when a figure misses its target or the README misquotes one (both listed), else 0.
    Figures the README quotes as pending (measured, not recorded yet) are listed with the
    benchmarks to run."""
    entries = read_results(results)
    bad = missed(entries)
    for e in bad:
        f = e.figure
        print(f"target missed: {f.name} = {f.value:.4g} {f.unit}, target {f.target} ({made(e)})")
    text = readme.read_text() if readme else ""
    quoted = problems(text, entries, readme.name, benches) if readme else []
    for line in quoted:
        print(f"misquoted: {line}")
    waiting = sorted({q.name for q in pending(text)} - {e.name for e in entries})
    if waiting:
        runs = sorted({n.partition(".")[0] for n in waiting})
        print(
            f"{len(waiting)} quoted figure(s) not recorded yet (marked pending): {waiting}; "
            f"record them with `python -m bench {' '.join(runs)}`, then `python -m bench --quote`"
        )
    older = sorted(e.name for e in entries if e.older)
    if older:
        print(f"({len(older)} of {len(entries)} figures are older: made at another commit)")
    if bad or quoted:
        print(f"{len(bad)} figure(s) miss their target; {len(quoted)} README problem(s)")
        return 1
    print(f"all {len(entries)} figures meet their targets; the README quotes them correctly")
    return 0


def quote(results: Path, readme: Path) -> int:
    """Rewrites the README's quoted figures from the results file; 0."""
    text, changes = requote(readme.read_text(), read_results(results))
    if changes:
        tmp = readme.with_name(f".{readme.name}.tmp")
        tmp.write_text(text)
        tmp.replace(readme)
    print("\n".join(changes) or "every quoted figure is already up to date")
    return 0


def main(
    argv: list[str],
    results: Path = RESULTS,
    folder: Path = HERE,
    package: str = "bench",
    readme: Path | None = README,
) -> int:
    """Runs the named benchmarks (all when none are named) and/or checks; returns the exit status.

    Args:
        argv: the command line after ``python -m bench``: benchmark names (``prune`` for
            ``bench_prune.py``; unknown names exit 2) and the options above.
        results: the JSON file read and written.
        folder, package: where the ``bench_*.py`` modules are and the package importing them
            (tests point these at a temporary package).
        readme: the README whose quoted figures ``--check`` and ``--quote`` read (None: none).
    """
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--check", action="store_true", help="fail on missed targets")
    parser.add_argument("--quote", action="store_true", help="rewrite the README's figures")
    args = parser.parse_args(argv)
    names = sorted(p.stem[len("bench_") :] for p in folder.glob("bench_*.py"))
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {names}", file=sys.stderr)
        return 2
    if args.quote:
        if args.names or args.check or readme is None:
            parser.error("--quote takes no benchmark names and no --check")
        return quote(results, readme)
    if args.names or not args.check:
        fresh, ran = _run(args.names or names, argv, package)
        everything = merge(read_results(results), fresh, ran)
        write_results(everything, results)
        print(table([e.figure for e in everything], {e.name: made(e) for e in everything}))
        here = Path.cwd()
        shown = results.relative_to(here) if results.is_relative_to(here) else results
        print(f"\nwrote {len(everything)} figures to {shown}")
        if not args.check:
            missing = [e.name for e in missed(everything)]
            if missing:
                print(f"targets not met: {missing}")
            return 0
    return check(results, readme, set(names))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
