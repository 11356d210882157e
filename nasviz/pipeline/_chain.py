"""The notebook pipeline: train_supernet -> search -> compress_best -> report.

Each step is a notebook in ``notebooks/pipeline/`` that reads the previous steps' artifacts
from one output folder and writes its own. A ``manifest.json`` in that folder records, per step,
the run it belongs to, its parameters and a hash of each output, so that

* a step refuses inputs that are missing or were produced by another run (checked before any
  work, by :func:`begin_step`, which every step notebook calls first);
* :func:`run_pipeline` resumes from the first step whose outputs are missing, stale or were
  made with other parameters, and re-runs every step after it;
* nothing already produced is deleted: a re-run overwrites only the files a step writes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasviz.errors import ConfigError, PipelineError
from nasviz.pipeline._locate import notebooks_dir
from nasviz.pipeline._notebook import (
    _check_writable,
    check_parameters,
    check_timeout,
    notebook_parameters,
    run_notebook,
)
from nasviz.pipeline._params import declared_parameters

__all__ = ["STEPS", "Step", "begin_step", "finish_step", "read_manifest", "run_pipeline"]

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Step:
    """One pipeline step: its notebook, the files it needs and the files it produces."""

    name: str
    notebook: str
    needs: tuple[str, ...]
    produces: tuple[str, ...]

    @property
    def path(self) -> Path:
        """The step's notebook (packaged with nasviz, or in a checkout's notebooks/pipeline/)."""
        return notebooks_dir() / "pipeline" / self.notebook


STEPS: tuple[Step, ...] = (
    Step("train_supernet", "1_train_supernet.ipynb", (), ("supernet.pt", "training.csv")),
    Step(
        "search",
        "2_search.ipynb",
        ("supernet.pt",),
        ("results.csv", "pareto.csv", "search.journal"),
    ),
    Step(
        "compress_best", "3_compress_best.ipynb", ("supernet.pt", "pareto.csv"), ("compressed.csv",)
    ),
    Step("report", "4_report.ipynb", ("results.csv", "compressed.csv"), ("report.json",)),
)


def step_named(name: str) -> Step:
    for step in STEPS:
        if step.name == name:
            return step
    raise ConfigError(f"unknown pipeline step {name!r}; steps: {[s.name for s in STEPS]}")


def _producer(filename: str) -> Step:
    return next(s for s in STEPS if filename in s.produces)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The folder's manifest (``{"run_id": ..., "steps": {...}}``); empty when there is none."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return {"run_id": None, "steps": {}}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"{path} is not valid JSON ({exc}); delete it to start the pipeline afresh"
        ) from exc
    if not isinstance(manifest, dict) or "steps" not in manifest:
        raise PipelineError(f"{path} is not a nasviz pipeline manifest")
    return manifest


def _write_manifest(out_dir: Path, manifest: Mapping[str, Any]) -> None:
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(out_dir / MANIFEST)


def _stale_reason(out_dir: Path, manifest: Mapping[str, Any], step: Step) -> str | None:
    """Why ``step``'s recorded outputs cannot be used now (None when they can)."""
    record = manifest["steps"].get(step.name)
    if record is None:
        return f"{step.name} has not run in {out_dir}"
    if record.get("run_id") != manifest.get("run_id"):
        return f"{step.name}'s outputs belong to another run ({record.get('run_id')}, current {manifest.get('run_id')})"
    for name in step.produces:
        path = out_dir / name
        if not path.is_file():
            return f"{name} (made by {step.name}) is missing from {out_dir}"
        if record.get("outputs", {}).get(name) != _digest(path):
            return f"{name} in {out_dir} was changed or comes from another run than the manifest records"
    return None


def begin_step(out_dir: str | Path, name: str) -> dict[str, Any]:
    """Called first by each step notebook: checks that the step's inputs exist and come from
    the current run (the first step starts a new run). Returns the manifest."""
    step = step_named(name)
    out = Path(out_dir)
    _check_writable(out)
    manifest = read_manifest(out)
    if not step.needs:
        manifest = {"run_id": uuid.uuid4().hex[:12], "steps": {}}
        _write_manifest(out, manifest)
        return manifest
    for producer in dict.fromkeys(_producer(f) for f in step.needs):
        reason = _stale_reason(out, manifest, producer)
        if reason is not None:
            raise PipelineError(
                f"step {name!r} cannot start: {reason}. Run {producer.name!r} first "
                f"(nasviz pipeline --out {out} resumes from the first incomplete step)"
            )
    return manifest


def finish_step(
    out_dir: str | Path, name: str, parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Called last by each step notebook: records the step's outputs (hashes) and parameters."""
    step = step_named(name)
    out = Path(out_dir)
    missing = [f for f in step.produces if not (out / f).is_file()]
    if missing:
        raise PipelineError(f"step {name!r} finished without writing {missing} to {out}")
    manifest = read_manifest(out)
    manifest["steps"][name] = {
        "run_id": manifest.get("run_id"),
        "parameters": dict(parameters or {}),
        "outputs": {f: _digest(out / f) for f in step.produces},
    }
    _write_manifest(out, manifest)
    return manifest


def _step_parameters(step: Step, given: Mapping[str, Any], out: Path) -> dict[str, Any]:
    declared = declared_parameters(step.path)
    values = {k: v for k, v in given.items() if k in declared}
    values["out_dir"] = str(out)
    check_parameters(step.path, declared, values)
    return values


def _compared(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that decide whether a step's outputs are current: all but ``out_dir``
    (a run folder copied or moved elsewhere is still up to date)."""
    return {k: v for k, v in parameters.items() if k != "out_dir"}


def run_pipeline(
    out: str | Path = "runs/pipeline",
    parameters: Mapping[str, Any] | None = None,
    kernel_name: str | None = None,
    progress: Callable[[str], None] | None = None,
    until: str | None = None,
    timeout: float | None = None,
    progress_bar: bool = False,
) -> list[str]:
    """Runs the pipeline into ``out``, resuming from the first step that must run; returns the
    names of the steps it ran.

    Parameters go to every step that declares them (an unknown name or a value a step rules out
    is an error, before any kernel starts). ``until`` names the last step to run (default: all);
    ``timeout`` bounds each cell's run in seconds. ``progress`` gets a line per step, and per
    cell unless ``progress_bar`` (a terminal) shows the cells on a bar. A failing step (an
    error, a timeout, a dead kernel) stops the chain with a :class:`PipelineError` naming the
    step and cell; its executed notebook and every earlier output stay in ``out``.
    """
    out_path = Path(out)
    given = dict(parameters or {})
    last = STEPS.index(step_named(until)) if until is not None else len(STEPS) - 1
    check_timeout(timeout)
    declared = {step.name: notebook_parameters(step.path) for step in STEPS}
    known = {p for names in declared.values() for p in names} - {"out_dir"}
    unknown = sorted(set(given) - known)
    if unknown:
        listing = "; ".join(
            f"{s}: {', '.join(n for n in d if n != 'out_dir')}" for s, d in declared.items()
        )
        raise ConfigError(
            f"no pipeline step has parameter(s) {unknown}; parameters by step: {listing}"
        )
    per_step = {step.name: _step_parameters(step, given, out_path) for step in STEPS}
    _check_writable(out_path)
    say = progress or (lambda _msg: None)
    ran: list[str] = []
    manifest = read_manifest(out_path)
    rerun = False
    for step in STEPS[: last + 1]:
        record = manifest["steps"].get(step.name, {})
        if (
            not rerun
            and _stale_reason(out_path, manifest, step) is None
            and _compared(record.get("parameters", {})) == _compared(per_step[step.name])
        ):
            say(f"{step.name}: up to date, skipped")
            continue
        rerun = True
        say(f"{step.name}: running {step.notebook}")
        try:
            run_notebook(
                step.path,
                per_step[step.name],
                out_path,
                kernel_name=kernel_name,
                timeout=timeout,
                progress_bar=progress_bar,
                say=say,
            )
        except PipelineError as exc:
            raise PipelineError(f"pipeline step {step.name!r} failed: {exc}") from exc
        ran.append(step.name)
        manifest = read_manifest(out_path)
        if step.name not in manifest["steps"]:
            raise PipelineError(
                f"pipeline step {step.name!r} ran but did not call finish_step(out_dir, {step.name!r})"
            )
        manifest["steps"][step.name]["parameters"] = per_step[
            step.name
        ]  # what the runner compares next time
        _write_manifest(out_path, manifest)
    return ran
