"""The calls of the previous release that keep working, with a FutureWarning, for one release.

* Arguments that became keyword-only (``ParetoExplorer(results, objs, net)``):
  :func:`keyword_only_after` maps the extra positionals onto their names and warns.
* Figure functions that now take the data (``pareto_figure(results, objectives)``) and used to
  take an info record (``pareto_figure(pareto_info(...))``): :func:`old_info_call` tells the two
  apart and warns.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["keyword_only_after", "old_info_call"]

F = TypeVar("F", bound=Callable[..., Any])


def keyword_only_after(*names: str) -> Callable[[F], F]:
    """Lets ``names`` (now keyword-only, in their old positional order) still be passed by
    position, with a FutureWarning saying how to call it instead."""

    def decorate(fn: F) -> F:
        params = inspect.signature(fn).parameters.values()
        kept = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            extra = args[kept:]
            if extra:
                if len(extra) > len(names):
                    raise TypeError(
                        f"{fn.__qualname__}() takes {kept} positional arguments but "
                        f"{len(args)} were given"
                    )
                moved = names[: len(extra)]
                for name in moved:
                    if name in kwargs:
                        raise TypeError(f"{fn.__qualname__}() got multiple values for {name!r}")
                warnings.warn(
                    f"{fn.__qualname__.removesuffix('.__init__')}: pass "
                    + ", ".join(f"{n}=..." for n in moved)
                    + " by keyword; passing them by position stops working in the next release",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs.update(zip(moved, extra, strict=True))
                args = args[:kept]
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def old_info_call(function: str, info: Any, record: type, new_call: str) -> bool:
    """Whether ``info`` is a ``record`` (the previous release's ``function(info)`` call); warns
    once per call site that ``new_call`` is the way now."""
    if not isinstance(info, record):
        return False
    warnings.warn(
        f"{function}({record.__name__}) is deprecated; call {new_call} (it computes the info "
        f"itself), or draw an info record with {function.replace('_figure', '_plot')}(info)",
        FutureWarning,
        stacklevel=3,
    )
    return True
