"""Old ways of calling the search API that keep working for one release, with a FutureWarning
(Python's category for deprecations aimed at end users; not a NasvizWarning, which the test
suite turns into errors).

(Arguments that became keyword-only: :func:`nasviz._compat.keyword_only_after`.)

* :class:`BlockingRun`: ``search.run`` was the :class:`~nasviz.runner.Run` object; it is now a
  method that blocks (``search.run()``), and ``search.run.<attribute>`` still reaches the Run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from nasviz._compat import REMOVED_IN
from nasviz.runner import Run, RunStatus

__all__ = ["BlockingRun"]


class BlockingRun:
    """``search.run``: call it to run the search in the calling thread until it ends
    (``search.run()``, like ``train_supernet(...).run()``); its attributes are those of the
    search's :class:`~nasviz.runner.Run` (``search.run.stop()``, deprecated: use
    ``search.stop()``)."""

    def __init__(self, call: Callable[[], RunStatus], run: Run):
        self._call = call
        self._run = run

    def __call__(self) -> RunStatus:
        return self._call()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        warnings.warn(
            f"search.run.{name} is deprecated and stops working in nasviz {REMOVED_IN}: "
            "search.run is now a method (search.run() blocks until the search ends); use "
            "the search's own start/stop/pause/resume/wait/status",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(self._run, name)
