"""One notebook as a parametrized step: ``nasviz run`` over papermill, with provenance.

``run_notebook`` checks parameter names and types against the notebook's ``parameters`` cell and
that the output folder is writable *before* a kernel starts, executes the notebook with
papermill into the output folder and writes ``<name>.provenance.json`` beside it (nasviz and
torch versions, parameters, seed, git commit when there is one). However a run stops (a cell
raises, a cell outlives the timeout, the kernel is killed, say for memory), the error names the
cell, the executed notebook stays beside the outputs showing the error in that cell, and the
provenance records the failure.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nasviz.errors import ConfigError, PipelineError, check_real
from nasviz.pipeline._locate import resolve_notebook

__all__ = ["check_parameters", "notebook_parameters", "provenance", "run_notebook"]

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def notebook_parameters(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """The ``parameters`` cell's names -> {"default", "type", "help"} (papermill's inspection)."""
    import papermill

    path = resolve_notebook(notebook)
    declared = papermill.inspect_notebook(str(path))
    if not declared:
        raise ConfigError(
            f"{path.name} has no cell tagged 'parameters'; tag one to make it a pipeline step"
        )
    return {
        name: {
            "default": info.get("default"),
            "type": _declared_type(info),
            "help": info.get("help", ""),
        }
        for name, info in declared.items()
    }


def _declared_type(info: Mapping[str, Any]) -> str:
    """The annotated type, else the type of the default's literal value ("None" if unknown)."""
    annotated = info.get("inferred_type_name", "None")
    if annotated not in ("None", None):
        return str(annotated)
    try:
        value = ast.literal_eval(str(info.get("default")))
    except (ValueError, SyntaxError):
        return "None"
    return type(value).__name__ if value is not None else "None"


def check_parameters(
    path: Path, declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]
) -> None:
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(
            f"{path.name} has no parameter(s) {unknown}; its parameters are: "
            + ", ".join(f"{n} ({d['type']}, default {d['default']})" for n, d in declared.items())
        )
    for name, value in given.items():
        expected = declared[name]["type"]
        allowed = _TYPES.get(expected)
        if allowed is None or value is None:
            continue  # papermill could not infer the type (or None was given): accept
        if isinstance(value, bool) and bool not in allowed:
            ok = False
        else:
            ok = isinstance(value, allowed)
        if not ok:
            raise ConfigError(
                f"{path.name}: parameter {name!r} expects {expected} (default {declared[name]['default']}), "
                f"got {type(value).__name__} {value!r}"
            )


def check_timeout(timeout: Any) -> float | None:
    """A per-cell timeout in seconds (> 0), or None for none."""
    if timeout is not None and check_real("timeout", timeout) <= 0:
        raise ConfigError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
    return timeout


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".nasviz-write-check-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"output folder {str(out)!r} cannot be written: {exc.strerror or exc}"
        ) from exc


def _git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance(notebook: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What produced an output: versions, parameters, seed and git commit."""
    import torch

    import nasviz

    return {
        "notebook": notebook.name,
        "parameters": dict(parameters),
        "seed": parameters.get("seed"),
        "nasviz": nasviz.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(notebook.resolve().parent),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _cell_label(cell: Mapping[str, Any], index: int) -> str:
    """``In [3] ('first line of the cell')``, or ``#4 (...)`` for a cell that never finished."""
    count = cell.get("execution_count")
    where = f"In [{count}]" if count else f"#{index + 1}"
    first = (cell.get("source") or "").strip().splitlines()[:1] or [""]
    return f"{where} ({first[0][:60]!r})"


def _stopped_cell(executed: Path, reason: str) -> str | None:
    """Labels the cell that was running when execution stopped (the last one papermill started);
    None when no cell had started.

    A dead kernel leaves no error in the notebook: the cell gets an error output saying
    ``reason``, so the kept notebook shows where and why it stopped.
    """
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)
    except (OSError, ValueError):
        return None
    started = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and c.metadata.get("papermill", {}).get("start_time")
    ]
    if not started:
        return None
    cell = nb.cells[started[-1]]
    if not any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
        error = nbformat.v4.new_output(
            "error", ename="PipelineError", evalue=reason, traceback=[reason]
        )
        cell.outputs.append(error)
        nbformat.write(nb, executed)
    return _cell_label(cell, started[-1])


def _failure(exc: Exception, executed: Path, timeout: float | None) -> str:
    """Where and why a run stopped: ``"in cell In [3] ('...') with ValueError: ..."``."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        cell = {"execution_count": exc.exec_count, "source": exc.source}
        return f"in cell {_cell_label(cell, exc.cell_index)} with {exc.ename}: {exc.evalue}"
    if isinstance(exc, DeadKernelError):
        why = "the kernel died (killed by the OS? out of memory? mybinder.org restarts kernels past 2 GB)"
    elif isinstance(exc, CellTimeoutError):
        why = f"it ran longer than the {timeout} s cell timeout and was interrupted"
    else:
        why = f"{type(exc).__name__}: {exc}"
    label = _stopped_cell(executed, why)
    return f"in cell {label}: {why}" if label else f"before its first cell ran: {why}"


def run_notebook(
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    out: str | Path = "runs",
    kernel_name: str | None = None,
    progress_bar: bool = False,
    timeout: float | None = None,
) -> Path:
    """Executes ``notebook`` with ``parameters`` into folder ``out``; returns the executed copy.

    A notebook that declares ``out_dir`` gets ``out`` as its ``out_dir`` unless one is given.
    Everything is checked before a kernel starts. A cell that fails, runs longer than
    ``timeout`` seconds, or whose kernel dies (e.g. out of memory) raises
    :class:`PipelineError` naming the cell; the executed notebook with the error stays in
    ``out`` for inspection and ``<name>.provenance.json`` records the failure.
    """
    import papermill

    path = resolve_notebook(notebook)
    declared = notebook_parameters(path)
    given = dict(parameters or {})
    out_path = Path(out)
    if "out_dir" in declared and "out_dir" not in given:
        given["out_dir"] = str(out_path)
    check_parameters(path, declared, given)
    check_timeout(timeout)
    _check_writable(out_path)
    executed = out_path / path.name
    record = provenance(path, given)
    prov_file = out_path / f"{path.stem}.provenance.json"
    try:
        papermill.execute_notebook(
            str(path),
            str(executed),
            parameters=given,
            kernel_name=kernel_name,
            progress_bar=progress_bar,
            cwd=str(Path.cwd()),
            execution_timeout=timeout,
        )
    except BaseException as exc:
        interrupted = not isinstance(exc, Exception)  # Ctrl-C: record it, then stop as asked
        what = "interrupted" if interrupted else _failure(exc, executed, timeout)
        record.update(status="interrupted" if interrupted else "failed", error=what)
        prov_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
        if interrupted:
            raise
        raise PipelineError(
            f"{path.name} failed {what}; the executed notebook is kept at {executed}"
        ) from exc
    record.update(status="completed", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    prov_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return executed
