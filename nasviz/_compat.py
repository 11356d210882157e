"""The calls of the previous release that keep working, with a FutureWarning, until nasviz
:data:`REMOVED_IN` (FutureWarning: Python's category for deprecations aimed at end users; not a
NasvizWarning, which the test suite turns into errors).

* :func:`keyword_only_after`: arguments that became keyword-only (``Search(fn, space,
  objectives, "random", 20)``, ``ParetoExplorer(results, objs, net)``) may still be passed by
  position, in their old order.
* :func:`renamed_arguments`: keyword arguments that got a new name (``channels(model, x,
  ratio=0.5)`` is ``sparsity=0.5``).
* :func:`renamed_method`: a method that got a new name (``RoutingStats.load()`` is
  ``expert_load()``).
* :func:`deprecated_function`: a function with a better way (``save_supernet(net, path)`` is
  ``net.save(path)``).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from nasviz.errors import ConfigError

__all__ = [
    "REMOVED_IN",
    "deprecated_function",
    "keyword_only_after",
    "renamed_arguments",
    "renamed_method",
]

#: The release that drops these old ways of calling.
REMOVED_IN = "0.3"

F = TypeVar("F", bound=Callable[..., Any])


def _owner(fn: Callable) -> str:
    return fn.__qualname__.removesuffix(".__init__")


def keyword_only_after(*names: str) -> Callable[[F], F]:
    """Lets ``names`` (now keyword-only, in their old positional order) still be passed by
    position, with a FutureWarning saying how to call it instead."""

    def decorate(fn: F) -> F:
        params = list(inspect.signature(fn).parameters.values())
        kept = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        bound = 1 if params and params[0].name in ("self", "cls") else 0  # not the caller's

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            extra = args[kept:]
            if extra:
                if len(extra) > len(names):
                    raise ConfigError(
                        f"{_owner(fn)} takes at most {kept - bound + len(names)} arguments by "
                        f"position, got {len(args) - bound}"
                    )
                moved = names[: len(extra)]
                clash = [n for n in moved if n in kwargs]
                if clash:
                    raise ConfigError(f"{_owner(fn)} got {clash} both by position and by keyword")
                warnings.warn(
                    f"{_owner(fn)}: pass {', '.join(f'{n}=...' for n in moved)} by keyword; "
                    f"passing them by position is deprecated and stops working in nasviz "
                    f"{REMOVED_IN}",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs.update(zip(moved, extra, strict=True))
                args = args[:kept]
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def renamed_arguments(**old_to_new: str) -> Callable[[F], F]:
    """Accepts the old keyword names (``old=new``) with a FutureWarning naming the new one."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise ConfigError(f"{_owner(fn)} got both {old}= (its old name) and {new}=")
                warnings.warn(
                    f"{_owner(fn)}: {old}= is now {new}=; {old}= stops working in nasviz "
                    f"{REMOVED_IN}",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def deprecated_function(fn: F, old: str, new: str) -> F:
    """``fn`` under its old public name ``old``, warning that ``new`` is the way now."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"{old}() is deprecated: use {new}; {old}() stops working in nasviz {REMOVED_IN}",
            FutureWarning,
            stacklevel=2,
        )
        return fn(*args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = old
    wrapper.__doc__ = f"Deprecated: use {new}."
    return wrapper  # type: ignore[return-value]


def renamed_method(new: str, old: str) -> Callable[..., Any]:
    """A method ``old`` that calls ``new`` with a FutureWarning (assign it in the class body:
    ``load = renamed_method("expert_load", "load")``)."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"{type(self).__name__}.{old}() is now {new}(); {old}() stops working in nasviz "
            f"{REMOVED_IN}",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(self, new)(*args, **kwargs)

    method.__name__ = old
    method.__doc__ = f"Deprecated name of :meth:`{new}`."
    return method
