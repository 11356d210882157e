"""nasviz's exception and warning types.

Every error a user can cause is one of these: a ``ValueError`` subclass for bad input, a
``RuntimeError`` subclass for a run that cannot go on. Messages say what was wrong and what is
allowed, so the user can fix the call without reading our source.
"""

from __future__ import annotations

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


class NasvizWarning(UserWarning):
    """Warnings nasviz emits; the test suite turns them into errors."""
