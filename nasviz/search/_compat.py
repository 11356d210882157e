"""Old ways of calling the search API that keep working for one release, with a FutureWarning
(Python's category for deprecations aimed at end users; not a NasvizWarning, which the test
suite turns into errors).

* :func:`positional_compat`: arguments that became keyword-only may still be passed by
  position (``Search(fn, space, objectives, "random", 20)``).
* :class:`BlockingRun`: ``search.run`` was the :class:`~nasviz.runner.Run` object; it is now a
  method that blocks (``search.run()``), and ``search.run.<attribute>`` still reaches the Run.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from nasviz.errors import ConfigError
from nasviz.runner import Run, RunStatus

__all__ = ["REMOVED_IN", "BlockingRun", "positional_compat"]

#: The release that drops these old ways of calling.
REMOVED_IN = "0.3"


def positional_compat(first: int, names: tuple[str, ...]) -> Callable:
    """Lets a method whose parameters after the first ``first`` became keyword-only still take
    them by position, in the old order ``names``, with a FutureWarning."""

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
            extra = args[first:]
            if extra:
                if len(extra) > len(names):
                    raise ConfigError(
                        f"{method.__qualname__} takes at most {first + len(names)} arguments by "
                        f"position, got {len(args)}"
                    )
                given = names[: len(extra)]
                clash = [n for n in given if n in kwargs]
                if clash:
                    raise ConfigError(
                        f"{method.__qualname__} got {clash} both by position and by keyword"
                    )
                warnings.warn(
                    f"passing {', '.join(given)} by position to {method.__qualname__} is "
                    f"deprecated and stops working in nasviz {REMOVED_IN}; pass them by keyword "
                    f"({', '.join(f'{n}=...' for n in given)})",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs.update(zip(given, extra, strict=True))
            return method(self, *args[:first], **kwargs)

        return inner

    return wrap


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
