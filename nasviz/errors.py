"""nasviz's exception and warning types.

Every error a user can cause is one of these: a ``ValueError`` subclass for bad input, a
``RuntimeError`` subclass for a run that cannot go on. Messages say what was wrong and what is
allowed, so the user can fix the call without reading our source. :func:`check_int`,
:func:`check_real`, :func:`check_shape` and :func:`check_options` are the argument checks
every module shares, so a number, a shape or a keyword of the wrong kind fails the same way
everywhere.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Integral, Real

__all__ = [
    "CheckpointError",
    "ConfigError",
    "MaskError",
    "MoEError",
    "NasvizError",
    "NasvizWarning",
    "PipelineError",
    "RunError",
    "ShapeError",
    "SpaceError",
    "StorageError",
    "TrainingError",
]


class NasvizError(Exception):
    """Base class of every error nasviz raises on purpose."""


class SpaceError(NasvizError, ValueError):
    """A search space or an architecture is malformed or outside its space."""


class ConfigError(NasvizError, ValueError):
    """An argument is not one of the allowed values or types."""


class ShapeError(NasvizError, ValueError):
    """A tensor does not have the shape a model or a function expects."""


class CheckpointError(NasvizError, ValueError):
    """A checkpoint or saved file does not match what it is loaded into."""


class StorageError(NasvizError, ValueError):
    """A results storage cannot be used (missing folder, another space, bad URL)."""


class MaskError(NasvizError, ValueError):
    """Pruning masks do not fit a model or a sparsity is out of range."""


class MoEError(NasvizError, ValueError):
    """A mixture-of-experts request does not fit the model or its statistics."""


class PipelineError(NasvizError, RuntimeError):
    """A notebook pipeline step cannot run or failed."""


class RunError(NasvizError, RuntimeError):
    """A background run was asked to do something its state does not allow."""


class TrainingError(NasvizError, RuntimeError):
    """Training cannot go on (a loss that is NaN or infinite); the last good checkpoint stays."""


class NasvizWarning(UserWarning):
    """Warnings nasviz emits; the test suite turns them into errors."""


def check_int(
    name: str, value: object, minimum: int | None = None, error: type[NasvizError] = ConfigError
) -> int:
    """Returns ``value`` as an int, or raises ``error`` naming ``name`` and what it allows.

    Python and numpy integers pass; bools, floats (even ``2.0``) and strings do not.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        allowed = "an int" if minimum is None else f"an int >= {minimum}"
        raise error(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise error(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_real(name: str, value: object, error: type[NasvizError] = ConfigError) -> float:
    """Returns ``value`` as a finite float, or raises ``error`` naming ``name``.

    Python and numpy ints and floats pass; bools, strings, NaN and infinities do not. Range
    checks are the caller's (they differ: ``[0, 1)``, ``[0, 1]``, ``> 0``).
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise error(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise error(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_shape(name: str, shape: object, error: type[NasvizError] = ShapeError) -> tuple[int, ...]:
    """Returns ``shape`` (a tuple, list or ``torch.Size`` of ints > 0) as a tuple of ints, or
    raises ``error`` naming ``name`` and what it allows."""
    if (
        isinstance(shape, str | bytes)
        or not isinstance(shape, Sequence)
        or not all(isinstance(d, Integral) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise error(f"{name} must be a tuple of positive ints, got {shape!r}")
    return tuple(int(d) for d in shape)


def check_options(
    where: str,
    options: Mapping[str, object],
    takers: Sequence[Callable[..., object]],
    internal: Iterable[str] = (),
) -> None:
    """Raises ConfigError for a keyword in ``options`` that none of ``takers`` (the function
    called and what it passes ``**options`` on to, last) accepts by name, or that is
    ``internal`` (set by the function itself): the message names it, the closest allowed
    keyword and all of them. Nothing is checked when the last taker takes ``**kwargs`` or has
    no readable signature. Called before anything runs, so a typo (``step=`` for ``steps=``) never
    reaches the engine as some other option."""
    internal = {"self", *internal}
    allowed: set[str] = set()
    for taker in takers:
        try:
            params = inspect.signature(taker).parameters.values()
        except (TypeError, ValueError):  # (a callable without a readable signature)
            return
        for param in params:
            if param.kind == param.VAR_KEYWORD and taker is takers[-1]:
                return  # the last one takes any keyword: nothing can be checked here
            if param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                allowed.add(param.name)
    allowed -= internal
    for name in options:
        if name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where} has no option {name!r}{hint}; its options are "
                f"{', '.join(sorted(allowed))}"
            )
