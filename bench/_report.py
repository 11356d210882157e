"""The one record every benchmark produces, where it came from, and the results file.

A benchmark's ``run()`` returns :class:`Figure` objects; the harness (``python -m bench``)
stamps each with the :class:`Provenance` of the run that made it (commit, date, machine,
command) and keeps them in ``bench/results.json``: a JSON list with one object per figure (one
line each, so a re-run's diff shows each changed figure), the figure's fields plus
``"provenance"`` and ``"older"``. ``older`` is true for a figure made at another commit than
the latest run written to the file, or of unknown provenance (entries from before provenance
was recorded are read as such, see :func:`read_results`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The commit of figures whose provenance was never recorded.
UNKNOWN_COMMIT = "unknown"


@dataclass(frozen=True)
class Figure:
    """One measured figure.

    Attributes:
        name: what was measured, e.g. ``"objectives.macs_time.10M"``.
        value: the number.
        unit: ``"s"``, ``"ms"``, ``"x"`` (a ratio), ``"evals"``, ...
        compared_with: what the value is measured against (a baseline run side by side in the
            same process, or a target), in words.
        target: the goal, in words (``"<= 1.10"``), or "" when informational.
        met: whether the target was met (None when there is no target).
    """

    name: str
    value: float
    unit: str
    compared_with: str = ""
    target: str = ""
    met: bool | None = None


@dataclass(frozen=True)
class Provenance:
    """Where a figure came from: one benchmark module's run.

    Attributes:
        commit: the git commit checked out (``"unknown"`` outside a git checkout and for
            figures recorded before provenance was).
        dirty: whether tracked files (other than ``bench/results.json``) had uncommitted
            changes, so the code measured was not exactly ``commit``'s; None when unknown.
        date: when the benchmark started, ISO 8601 in UTC.
        command: the command line that ran it (``python -m bench prune``).
        machine: CPU model, cores usable and online, torch, Python and OS versions.
        load: the 1-minute load average when the benchmark started and ended (other work on
            the machine), empty when unknown.
        seconds: the benchmark's wall time.
    """

    commit: str
    dirty: bool | None
    date: str
    command: str
    machine: dict[str, Any] = field(default_factory=dict)
    load: tuple[float, ...] = ()
    seconds: float | None = None


#: The provenance of figures recorded before provenance was (read from an old results file).
UNKNOWN = Provenance(
    UNKNOWN_COMMIT, None, "unknown", "unknown (recorded before bench/results.json held provenance)"
)


@dataclass(frozen=True)
class Entry:
    """A figure as the results file holds it: with its provenance, and whether it is older than
    the file's latest run (made at another commit)."""

    figure: Figure
    provenance: Provenance
    older: bool = False

    @property
    def name(self) -> str:
        return self.figure.name


def machine() -> dict[str, Any]:
    """The machine a benchmark runs on, as far as figures depend on it."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": usable,
        "cpus_online": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_state(root: Path = ROOT) -> tuple[str, bool | None]:
    """(commit, dirty) of the checkout at ``root``; ``("unknown", None)`` outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        # never strip status lines: " M path" starts with a space that is part of the format
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN_COMMIT, None
    changed_files = [line[3:] for line in changed.splitlines() if line]
    return commit, any(f != "bench/results.json" for f in changed_files)


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# ---- the results file --------------------------------------------------------------------------
def _entry(d: dict[str, Any]) -> Entry:
    """An entry from its JSON object; an object without provenance (written before provenance
    was recorded) gets :data:`UNKNOWN` and counts as older."""
    names = {f.name for f in dataclasses.fields(Figure)}
    figure = Figure(**{k: v for k, v in d.items() if k in names})
    if "provenance" not in d:
        return Entry(figure, UNKNOWN, older=True)
    p = dict(d["provenance"])
    p["load"] = tuple(p.get("load") or ())
    return Entry(figure, Provenance(**p), bool(d.get("older", False)))


def read_results(path: Path) -> list[Entry]:
    """Every entry of a results file (an empty list when there is none)."""
    if not path.exists():
        return []
    return [_entry(d) for d in json.loads(path.read_text())]


def _plain(value: Any) -> Any:
    """A numpy scalar (a benchmark's ``np.bool_`` "met", an ``np.float64`` value) as the Python
    value JSON writes; anything else is a bug in a benchmark, named."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    raise TypeError(f"a figure holds a {type(value).__name__} ({value!r}), not a JSON value")


def write_results(entries: list[Entry], path: Path) -> None:
    """Writes ``entries`` to ``path`` atomically (a reader never sees half a file)."""
    rows = [
        {**asdict(e.figure), "provenance": asdict(e.provenance), "older": e.older}
        for e in sorted(entries, key=lambda e: e.name)
    ]
    text = "[\n" + ",\n".join(f"  {json.dumps(row, default=_plain)}" for row in rows) + "\n]\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def merge(previous: list[Entry], new: list[Entry], ran: set[str]) -> list[Entry]:
    """The file after a run of the benchmarks ``ran`` produced ``new``: every figure of those
    benchmarks replaced (stale ones dropped), the others kept and marked older when made at
    another commit than this run's."""
    commits = {e.provenance.commit for e in new}
    commit = commits.pop() if len(commits) == 1 else None
    kept = []
    for e in previous:
        if e.name.split(".")[0] in ran:
            continue
        mine = e.provenance.commit
        older = commit is None or mine == UNKNOWN_COMMIT or mine != commit
        kept.append(dataclasses.replace(e, older=older))
    fresh = [dataclasses.replace(e, older=False) for e in new]
    return sorted(kept + fresh, key=lambda e: e.name)


def missed(entries: list[Entry]) -> list[Entry]:
    """The entries whose figure misses its target (a failed measurement included)."""
    return [e for e in entries if e.figure.met is False]


# ---- printing ------------------------------------------------------------------------------
def table(figures: list[Figure], sources: dict[str, str] | None = None) -> str:
    """A plain-text table of ``figures``; ``sources`` (name -> words) adds a column saying
    where each came from."""
    head = ("figure", "value", "unit", "target", "met", "compared with")
    rows = [(*head, "made") if sources else head]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        row = (f.name, f"{f.value:.4g}", f.unit, f.target, met, f.compared_with)
        rows.append((*row, sources.get(f.name, "")) if sources else row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def made(entry: Entry) -> str:
    """Where an entry came from, in a few words (``"abc1234 2026-05-01"``, ``"older ..."``)."""
    p = entry.provenance
    where = (
        "provenance unknown"
        if p.commit == UNKNOWN_COMMIT
        else f"{p.commit[:7]}{'+changes' if p.dirty else ''} {p.date[:10]}"
    )
    return ("older: " if entry.older else "") + where
