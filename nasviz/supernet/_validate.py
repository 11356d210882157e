"""Argument checks of the supernet constructors: every argument is checked before anything is
built, and a bad one raises ConfigError naming it, saying what was wrong and what is allowed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasviz.errors import ConfigError, check_int

__all__ = ["check_flag", "check_int", "check_ints"]


def check_ints(
    name: str, values: Any, minimum: int = 1, choices: bool = True, odd: bool = False
) -> tuple[int, ...]:
    """A constructor's sequence argument as a tuple of ints, or a ConfigError naming ``name``,
    what was wrong and what is allowed (checked before anything is built).

    Args:
        name: the argument's name, for the message.
        values: a non-empty list or tuple of ints (numpy ints too; not bools, floats or a
            string).
        minimum: the smallest allowed value.
        choices: the values are allowed choices: returned sorted, repeats dropped; False keeps
            the order (one entry per stage).
        odd: only odd values are allowed (kernel sizes).
    """
    what = f"{'odd ' if odd else ''}ints >= {minimum}"
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ConfigError(f"{name} must be a non-empty list or tuple of {what}, got {values!r}")
    out = [check_int(f"every value of {name}", v, minimum) for v in values]
    if odd and any(v % 2 == 0 for v in out):
        raise ConfigError(f"{name} must hold {what} (centred kernels), got {list(values)}")
    return tuple(sorted(set(out))) if choices else tuple(out)


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool (numpy's too), else a ConfigError naming ``name``."""
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)
