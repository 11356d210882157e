"""One notebook as a parametrized step: ``nasviz run`` over papermill, with provenance.

``run_notebook`` checks parameter names, types, choices and bounds against the notebook's
``parameters`` cell (:mod:`nasviz.pipeline._params`) and that the output folder is writable
*before* a kernel starts, executes the notebook with papermill into the output folder and writes
``<name>.provenance.json`` beside it (nasviz and torch versions, the parameters given and those
in effect, the seed actually used, git commit when there is one). While it runs, the terminal
shows the executing cell and the notebook's notices (:mod:`nasviz.pipeline._progress`); the
kernel's own log goes to a file, kept only when the run fails.

However a run stops (a cell raises, a cell outlives the timeout, the kernel is killed, say for
memory), the error names the cell, the executed notebook stays beside the outputs showing the
error in that cell, and the provenance records the failure. A failed run never replaces a
completed one: when ``<name>.ipynb`` holds a completed run, the failed one is written beside it
as ``<name>.failed.ipynb`` (and ``<name>.failed.provenance.json``).
"""

from __future__ import annotations

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
from nasviz.pipeline._params import Parameter, check_values, declared_parameters
from nasviz.pipeline._progress import CellReporter, register_engine

__all__ = [
    "check_parameters",
    "effective_parameters",
    "notebook_parameters",
    "provenance",
    "run_notebook",
]


def notebook_parameters(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """The ``parameters`` cell's names -> {"default", "type", "help", "choices", "bound"}
    (see :mod:`nasviz.pipeline._params` for how a notebook declares them)."""
    return {
        name: p.describe() for name, p in declared_parameters(resolve_notebook(notebook)).items()
    }


def check_parameters(
    path: Path, declared: Mapping[str, Parameter], given: Mapping[str, Any]
) -> None:
    """Raises ConfigError for an unknown name or a value the notebook rules out."""
    check_values(path, declared, given)


def effective_parameters(
    declared: Mapping[str, Parameter], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Every parameter's value in the run: the given ones, else the notebook's default (those
    whose default is not a literal are left out)."""
    values = {n: p.value for n, p in declared.items() if p.literal}
    values.update(given)
    return values


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


def provenance(
    notebook: Path, parameters: Mapping[str, Any], effective: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What produced an output: versions, the parameters given and those in effect (defaults
    included), the seed actually used, and the git commit."""
    import torch

    import nasviz

    effective = dict(parameters if effective is None else effective)
    return {
        "notebook": notebook.name,
        "parameters": dict(parameters),
        "effective_parameters": effective,
        "seed": effective.get("seed"),
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


def _completed(prov_file: Path) -> bool:
    try:
        return json.loads(prov_file.read_text()).get("status") == "completed"
    except (OSError, ValueError, AttributeError):
        return False


def run_notebook(
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    out: str | Path = "runs",
    kernel_name: str | None = None,
    progress_bar: bool = False,
    timeout: float | None = None,
    say: Any = None,
) -> Path:
    """Executes ``notebook`` with ``parameters`` into folder ``out``; returns the executed copy.

    A notebook that declares ``out_dir`` gets ``out`` as its ``out_dir`` unless one is given.
    Everything is checked before a kernel starts. While it runs, each cell is reported (on a
    progress bar with ``progress_bar``, else as a line to ``say`` or stderr), and so are the
    notebook's notices. A cell that fails, runs longer than ``timeout`` seconds, or whose kernel
    dies (e.g. out of memory) raises :class:`PipelineError` naming the cell; the executed
    notebook with the error stays in ``out`` for inspection (beside a completed earlier run,
    never over it: see the module docstring) with its provenance and the kernel's log.
    """
    import papermill

    path = resolve_notebook(notebook)
    declared = declared_parameters(path)
    given = dict(parameters or {})
    out_path = Path(out)
    if "out_dir" in declared and "out_dir" not in given:
        given["out_dir"] = str(out_path)
    check_parameters(path, declared, given)
    check_timeout(timeout)
    _check_writable(out_path)
    executed = out_path / path.name
    prov_file = out_path / f"{path.stem}.provenance.json"
    running = out_path / f".{path.stem}.running.ipynb"
    kernel_log = out_path / f".{path.stem}.kernel.log"
    record = provenance(path, given, effective_parameters(declared, given))
    reporter = CellReporter(path.stem, say=say if not progress_bar else None)
    try:
        with kernel_log.open("w") as log:
            papermill.execute_notebook(
                str(path),
                str(running),
                parameters=given,
                engine_name=register_engine(),
                kernel_name=kernel_name,
                progress_bar=progress_bar,
                cwd=str(Path.cwd()),
                execution_timeout=timeout,
                nasviz_reporter=reporter,
                nasviz_kernel_log=log,
            )
    except BaseException as exc:
        interrupted = not isinstance(exc, Exception)  # Ctrl-C: record it, then stop as asked
        what = "interrupted" if interrupted else _failure(exc, running, timeout)
        record.update(status="interrupted" if interrupted else "failed", error=what)
        if _completed(prov_file):  # a good earlier run stays; this one goes beside it
            executed = out_path / f"{path.stem}.failed.ipynb"
            prov_file = out_path / f"{path.stem}.failed.provenance.json"
        if running.exists():
            running.replace(executed)
        log_note = ""
        if kernel_log.exists() and kernel_log.stat().st_size:
            kept = out_path / f"{executed.stem}.kernel.log"
            kernel_log.replace(kept)
            log_note = f" (the kernel's log: {kept})"
        kernel_log.unlink(missing_ok=True)
        record["notebook_file"] = str(executed)
        prov_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
        if interrupted:
            raise
        raise PipelineError(
            f"{path.name} failed {what}; the executed notebook is kept at {executed}{log_note}"
        ) from exc
    running.replace(executed)
    kernel_log.unlink(missing_ok=True)
    record.update(
        status="completed",
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        notices=reporter.notices,
        notebook_file=str(executed),
    )
    prov_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return executed
