"""Optional dependencies of deployment (the ``deploy`` extra): checks with clear errors."""

from __future__ import annotations

import importlib.util

from nasviz.errors import ConfigError

__all__ = ["installed", "require"]

#: import name -> pip distribution, for the messages
_DISTRIBUTIONS = {"onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime"}


def installed(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def require(module: str, purpose: str) -> None:
    """Raises ConfigError naming the extra to install unless ``module`` is importable."""
    if not installed(module):
        raise ConfigError(
            f"{purpose} needs the package {_DISTRIBUTIONS.get(module, module)!r}, which is not "
            "installed; install nasviz's deploy extra: pip install 'nasviz[deploy]'"
        )
