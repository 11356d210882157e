"""The calls of the previous release that keep working, with a FutureWarning, for one release.

* Arguments that became keyword-only (``ParetoExplorer(results, objs, net)``):
  :func:`nasviz._compat.keyword_only_after` (re-exported here).
* Figure functions that now take the data (``pareto_figure(results, objectives)``) and used to
  take an info record (``pareto_figure(pareto_info(...))``): :func:`old_info_call` tells the two
  apart and warns.
"""

from __future__ import annotations

import warnings
from typing import Any

from nasviz._compat import keyword_only_after

__all__ = ["keyword_only_after", "old_info_call"]


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
