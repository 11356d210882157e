"""The ``nasviz`` command line: ``nasviz run``, ``nasviz pipeline``, ``nasviz params``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasviz.errors import ConfigError, PipelineError
from nasviz.pipeline._chain import STEPS, run_pipeline, step_named
from nasviz.pipeline._notebook import notebook_parameters, run_notebook

__all__ = ["main"]


def _parse_value(text: str) -> Any:
    """CLI values: JSON when they parse (3, 0.5, true, [1, 2], "x"), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"True": True, "False": False, "None": None}.get(text, text)


def _parser() -> argparse.ArgumentParser:
    import nasviz

    parser = argparse.ArgumentParser(
        prog="nasviz", description="Run nasviz notebooks as pipeline steps."
    )
    parser.add_argument("--version", action="version", version=f"nasviz {nasviz.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    param = {
        "nargs": 2,
        "action": "append",
        "default": [],
        "metavar": ("NAME", "VALUE"),
        "help": "a parameter (repeatable); values parse as JSON when they can",
    }
    run = sub.add_parser("run", help="execute one notebook with parameters (papermill)")
    run.add_argument(
        "notebook", help="path to an .ipynb, or a name from nasviz's notebooks/ folder"
    )
    run.add_argument("-p", "--parameter", **param)
    run.add_argument("-o", "--out", default="runs", help="output folder (default: runs)")
    run.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    run.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell")
    pipe = sub.add_parser(
        "pipeline", help="train_supernet -> search -> compress_best -> report, resuming"
    )
    pipe.add_argument("-p", "--parameter", **param)
    pipe.add_argument(
        "-o", "--out", default="runs/pipeline", help="output folder (default: runs/pipeline)"
    )
    pipe.add_argument("--kernel", default=None, help="Jupyter kernel name")
    pipe.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell")
    pipe.add_argument(
        "--until", default=None, metavar="STEP", help="the last step to run (default: all)"
    )
    params = sub.add_parser("params", help="list a notebook's parameters")
    params.add_argument("notebook")
    sub.add_parser("worker", help="join a shared search (nasviz worker --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nasviz`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:  # its own parser, imported only when used
        from nasviz.search._worker import main as worker

        return worker(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "params":
            for name, info in notebook_parameters(args.notebook).items():
                print(
                    f"{name} = {info['default']}  # {info['type']}"
                    + (f"  {info['help']}" if info["help"] else "")
                )
            return 0
        values = {name: _parse_value(value) for name, value in args.parameter}
        bar = sys.stderr.isatty()
        if args.command == "pipeline":
            ran = run_pipeline(
                args.out,
                values,
                kernel_name=args.kernel,
                progress=lambda m: print(m, file=sys.stderr, flush=True),
                until=args.until,
                timeout=args.timeout,
                progress_bar=bar,
            )
            last = STEPS[-1] if args.until is None else step_named(args.until)
            print(f"pipeline done in {args.out}: ran {ran or 'nothing (all steps up to date)'}")
            label = "report" if last is STEPS[-1] else f"last step ({last.name})"
            print(f"{label}: {Path(args.out) / last.notebook}")
            return 0
        executed = run_notebook(
            args.notebook,
            values,
            args.out,
            kernel_name=args.kernel,
            progress_bar=bar,
            timeout=args.timeout,
        )
        print(f"executed notebook: {executed}")
        return 0
    except (ConfigError, PipelineError) as exc:
        print(f"nasviz: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
