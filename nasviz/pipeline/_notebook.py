"""One notebook as a parametrized step: ``nasviz run`` over papermill, with provenance.

``run_notebook`` checks parameter names and types against the notebook's ``parameters`` cell and
that the output folder is writable *before* a kernel starts, executes the notebook with
papermill into the output folder and writes ``<name>.provenance.json`` beside it (nasviz and
torch versions, parameters, seed, git commit when there is one).
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

from nasviz.errors import ConfigError, PipelineError

__all__ = [
    "check_parameters",
    "notebook_parameters",
    "provenance",
    "resolve_notebook",
    "run_notebook",
]

_REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def _available() -> list[str]:
    if not _REPO_NOTEBOOKS.is_dir():
        return []
    return sorted(
        str(p.relative_to(_REPO_NOTEBOOKS).with_suffix(""))
        for p in _REPO_NOTEBOOKS.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )


def resolve_notebook(notebook: str | Path) -> Path:
    """A notebook path, or a name from nasviz's notebooks/ folder (``"02_search"``)."""
    path = Path(notebook)
    candidates = [
        path,
        path.with_suffix(".ipynb"),
        _REPO_NOTEBOOKS / path,
        (_REPO_NOTEBOOKS / path).with_suffix(".ipynb"),
    ]
    for candidate in candidates:
        if candidate.suffix == ".ipynb" and candidate.is_file():
            return candidate
    known = ", ".join(_available()) or "(none found)"
    raise ConfigError(
        f"notebook {str(notebook)!r} not found; give a path to an .ipynb or one of: {known}"
    )


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


def run_notebook(
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    out: str | Path = "runs",
    kernel_name: str | None = None,
    progress_bar: bool = False,
) -> Path:
    """Executes ``notebook`` with ``parameters`` into folder ``out``; returns the executed copy.

    A notebook that declares ``out_dir`` gets ``out`` as its ``out_dir`` unless one is given.
    Everything is checked before a kernel starts. A failing cell raises :class:`PipelineError`
    naming the cell; the executed notebook with the error stays in ``out`` for inspection.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    path = resolve_notebook(notebook)
    declared = notebook_parameters(path)
    given = dict(parameters or {})
    out_path = Path(out)
    if "out_dir" in declared and "out_dir" not in given:
        given["out_dir"] = str(out_path)
    check_parameters(path, declared, given)
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
        )
    except PapermillExecutionError as exc:
        record.update(
            status="failed", failed_cell=exc.exec_count, error=f"{exc.ename}: {exc.evalue}"
        )
        prov_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
        first_line = (exc.source or "").strip().splitlines()[:1] or [""]
        raise PipelineError(
            f"{path.name} failed in cell In [{exc.exec_count}] ({first_line[0][:60]!r}) with {exc.ename}: {exc.evalue}; "
            f"the executed notebook is kept at {executed}"
        ) from exc
    record.update(status="completed", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    prov_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return executed
