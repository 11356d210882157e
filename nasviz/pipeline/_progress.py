"""What the terminal shows while ``nasviz run`` / ``nasviz pipeline`` execute a notebook: the
cell being executed (a progress bar on a terminal, one line per cell in a log), the notices the
notebook raises (:func:`nasviz.pipeline.notice`), and nothing else: the kernel's own log lines
("Kernel is running over TCP without encryption", "KeyboardInterrupt caught in kernel") go to a
log file beside the outputs instead of the terminal.

Implemented as a papermill engine (registered as ``"nasviz"``): papermill's nbclient engine,
whose notebook manager reports each cell's start and end, and whose kernel writes its stdout and
stderr into a file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

from nasviz.pipeline._notice import notices

__all__ = ["ENGINE", "CellReporter", "register_engine"]

ENGINE = "nasviz"


def _first_line(cell: Any) -> str:
    lines = [line for line in str(cell.get("source", "")).splitlines() if line.strip()]
    return lines[0].strip()[:60] if lines else ""


class CellReporter:
    """Reports a notebook's cells as they run to ``stream``: on papermill's progress bar when
    there is one (a terminal), else one line per cell."""

    def __init__(
        self, label: str, stream: IO[str] | None = None, say: Callable[[str], None] | None = None
    ):
        self.label = label
        self.stream = stream or sys.stderr
        self._say = say
        self.notices: list[str] = []

    def say(self, text: str, bar: Any = None) -> None:
        if self._say is not None:
            self._say(text)
        elif bar is not None:
            bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def start(self, nb_man: Any, cell: Any, index: int) -> None:
        code = [c for c in nb_man.nb.cells if c.get("cell_type") == "code"]
        if cell.get("cell_type") != "code":
            return
        number = next((i for i, c in enumerate(code, 1) if c is cell), index + 1)
        what = f"{self.label}: cell {number}/{len(code)} {_first_line(cell)!r}"
        bar = getattr(nb_man, "pbar", None)
        if bar is not None:
            bar.set_description(f"{self.label} cell {number}/{len(code)}")
            bar.set_postfix_str(_first_line(cell)[:40], refresh=True)
        else:
            self.say(what)

    def complete(self, nb_man: Any, cell: Any) -> None:
        for message in notices(cell):
            self.notices.append(message)
            self.say(f"{self.label}: note: {message}", getattr(nb_man, "pbar", None))


_registered: list[type] = []


def register_engine() -> str:
    """Registers the nasviz engine with papermill (once) and returns its name."""
    if _registered:
        return ENGINE
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.utils import merge_kwargs, remove_args

    class _Engine(NBClientEngine):
        """papermill's nbclient engine, reporting cells and keeping the kernel's log off the terminal."""

        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man: Any,
            kernel_name: str,
            log_output: bool = False,
            stdout_file: Any = None,
            stderr_file: Any = None,
            start_timeout: int = 60,
            execution_timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            reporter: CellReporter | None = kwargs.pop("nasviz_reporter", None)
            kernel_log: IO[Any] | None = kwargs.pop("nasviz_kernel_log", None)
            if reporter is not None:
                started, completed = nb_man.cell_start, nb_man.cell_complete

                def cell_start(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                    out = started(cell, cell_index, **kw)
                    reporter.start(nb_man, cell, cell_index or 0)
                    return out

                def cell_complete(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                    out = completed(cell, cell_index, **kw)
                    reporter.complete(nb_man, cell)
                    return out

                nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(
                kwargs,
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=None,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
            )
            final = {k: v for k, v in final.items() if v is not None or k == "timeout"}
            streams = {"stdout": kernel_log, "stderr": kernel_log} if kernel_log else {}
            return PapermillNotebookClient(nb_man, **final).execute(**streams)

    papermill_engines.register(ENGINE, _Engine)
    _registered.append(_Engine)
    return ENGINE
