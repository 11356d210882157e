"""Deployable exports: ``torch.export`` programs and ONNX files of any model.

Both work on any ``nn.Module`` whose forward ``torch.export`` can trace: the static modules a
supernet's ``export(arch)`` returns (ElasticMLP, ElasticCNN, ElasticTransformer, with MoE FFNs
too), models converted by nasviz, and the user's own. The model is exported in eval mode without
autograd; its mode, weights and buffers are left as they were, also when the export fails.

The ONNX file comes from PyTorch's ``torch.export``-based ("dynamo") exporter, which needs the
``onnx`` and ``onnxscript`` packages (nasviz's ``deploy`` extra).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasviz.errors import ConfigError, RunError, ShapeError
from nasviz.export._deps import require
from nasviz.objectives import _eval_mode, _module

__all__ = ["ExampleInput", "as_inputs", "onnx", "program"]

ExampleInput = torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]

#: The dimensions ``dynamic=`` may free, and their position in every input.
DYNAMIC_DIMS = {"batch": 0, "sequence": 1}


def dynamic_shapes(
    dynamic: str | Sequence[str] | None,
    args: tuple[torch.Tensor, ...],
    kwargs: dict[str, torch.Tensor],
) -> Any:
    """``torch.export``'s ``dynamic_shapes`` for ``dynamic=`` (``"batch"``, ``"sequence"`` or
    both): those dimensions of every input are symbolic; None when nothing is dynamic."""
    if not dynamic:
        return None
    names = (dynamic,) if isinstance(dynamic, str) else tuple(dynamic)
    unknown = [n for n in names if n not in DYNAMIC_DIMS]
    if unknown or not names:
        raise ConfigError(
            f"dynamic must name dimensions among {list(DYNAMIC_DIMS)}, got {dynamic!r}"
        )
    dims = {DYNAMIC_DIMS[n]: torch.export.Dim.DYNAMIC for n in names}
    for tensor in (*args, *kwargs.values()):
        if tensor.ndim <= max(dims):
            raise ConfigError(
                f"dynamic={list(names)}: an input of shape {tuple(tensor.shape)} has no "
                f"dimension {max(dims)}"
            )
        small = [n for n in names if tensor.shape[DYNAMIC_DIMS[n]] < 2]
        if small:
            raise ConfigError(
                f"dynamic={list(names)}: give an example input whose {small} size is at least 2 "
                f"(got shape {tuple(tensor.shape)}; torch.export fixes sizes 0 and 1)"
            )
    if kwargs:
        return {name: dict(dims) for name in kwargs}
    return tuple(dict(dims) for _ in args)


def as_inputs(example_input: Any) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """``(args, kwargs)`` for a forward: a tensor, a tuple/list of tensors (positional) or a
    dict of tensors (keyword arguments, as Hugging Face models take them)."""
    if isinstance(example_input, torch.Tensor):
        return (example_input,), {}
    if isinstance(example_input, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in example_input.items()
    ):
        return (), dict(example_input)
    if (
        isinstance(example_input, Sequence)
        and not isinstance(example_input, str | bytes)
        and example_input
        and all(isinstance(v, torch.Tensor) for v in example_input)
    ):
        return tuple(example_input), {}
    raise ConfigError(
        "example_input must be a tensor, a tuple of tensors (positional inputs) or a dict "
        f"name -> tensor (keyword inputs); got {type(example_input).__name__}"
    )


def _shapes(args: tuple[torch.Tensor, ...], kwargs: dict[str, torch.Tensor]) -> str:
    shapes = [tuple(a.shape) for a in args] + [f"{k}={tuple(v.shape)}" for k, v in kwargs.items()]
    return ", ".join(map(str, shapes))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silences torch's exporter chatter (torchvision notices, deprecation notes) for the call."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", category=FutureWarning, module=r"(torch|onnx|copyreg)"
            )
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(torch|onnx)")
            yield
    finally:
        logger.setLevel(level)


@functools.cache
def _registry(opset: int) -> Any:
    """torch's table of ONNX translations for ``opset``, built once (building it takes seconds,
    and ``torch.onnx.export`` builds it on every call); None where torch has no such table."""
    try:
        from torch.onnx._internal.exporter import _constants, _core, _registration

        if "registry" not in inspect.signature(_core.export).parameters:
            return None
        return _registration.ONNXRegistry().from_torchlib(
            opset_version=max(opset, _constants.TORCHLIB_OPSET)
        )
    except (ImportError, AttributeError, TypeError, ValueError):
        return None


def _convert(exported: torch.export.ExportedProgram, names: list[str], opset: int | None) -> Any:
    """What ``torch.onnx.export(exported, dynamo=True, ...)`` does, reusing the translation
    table where this torch version lets us (the same conversion, seconds faster per model)."""
    from torch.onnx import _constants as onnx_constants

    version = onnx_constants.ONNX_DEFAULT_OPSET if opset is None else opset
    registry = _registry(version)
    if registry is None:
        return torch.onnx.export(
            exported, dynamo=True, verbose=False, opset_version=version, input_names=names
        )
    from torch.onnx._internal.exporter import _core

    return _core.export(
        exported, registry=registry, input_names=names, verbose=False, opset_version=version
    )


def program(
    model: nn.Module,
    example_input: ExampleInput,
    *,
    dynamic: str | Sequence[str] | None = None,
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` (in eval mode, no autograd) on ``example_input``.

    Shapes are those of ``example_input``, except the dimensions named in ``dynamic``
    (``"batch"``: dimension 0 of every input, ``"sequence"``: dimension 1), which the program
    takes at any size (the example's must be at least 2). The model's train/eval mode is
    restored afterwards.

    Raises:
        ConfigError: ``model`` is not a torch module, or runs torch.ao's quantized kernels,
            or ``example_input`` is not tensors.
        ShapeError: the model's forward fails on ``example_input``.
        RunError: the forward runs but ``torch.export`` cannot trace it (the message says why).
    """
    from nasviz.quant._ptq import runs_ao_kernels

    module = _module(model)
    if runs_ao_kernels(module):
        raise ConfigError(
            f"this {type(module).__name__} runs torch.ao's int8 kernels (quantize(mode='dynamic' "
            "or 'static')), which torch.export cannot trace; export the full-precision model "
            "(ONNX Runtime can quantize it: onnxruntime.quantization.quantize_dynamic) or a "
            "weight-only quantized one (quantize(model, bits))"
        )
    args, kwargs = as_inputs(example_input)
    shapes = dynamic_shapes(dynamic, args, kwargs)
    restore = _eval_mode(module)
    try:
        with torch.no_grad():
            try:
                module(*args, **kwargs)
            except (RuntimeError, IndexError, TypeError) as exc:
                raise ShapeError(
                    f"forward pass on inputs of shape {_shapes(args, kwargs)} failed: {exc}"
                ) from exc
            try:
                return torch.export.export(module, args, kwargs, dynamic_shapes=shapes)
            except Exception as exc:
                first, hint = (str(exc).splitlines() or [""])[0], ""
                if shapes is not None and "Constraints violated" in first:
                    first = first.rstrip(". ")
                    hint = (
                        f"; the model fixes a dimension that dynamic={dynamic!r} lets vary (an "
                        "MLP or CNN has no sequence dimension: use dynamic='batch')"
                    )
                raise RunError(
                    f"torch.export could not export {type(module).__name__}: "
                    f"{type(exc).__name__}: {first}{hint}"
                ) from exc
    finally:
        restore()


def onnx(
    model: nn.Module,
    example_input: ExampleInput,
    path: str | os.PathLike,
    *,
    opset: int | None = None,
    dynamic: str | Sequence[str] | None = None,
) -> Path:
    """Writes ``model`` to ``path`` as an ONNX file through :func:`program` (torch.export).

    Inputs are named ``input`` (one tensor), ``input_0, input_1, ...`` (several) or by their
    keyword. Shapes are those of ``example_input``, except the ``dynamic`` dimensions
    (``"batch"``, ``"sequence"``): the file then runs at any batch size or sequence length.

    Args:
        model: any module ``torch.export`` can trace (e.g. ``net.export(arch)``).
        example_input: a tensor, a tuple of tensors or a dict name -> tensor.
        path: the ``.onnx`` file to write (its folder must exist); written whole or not at all.
        opset: ONNX opset version; None lets PyTorch choose.
        dynamic: ``"batch"``, ``"sequence"`` or both (see :func:`program`).

    Returns:
        The path written.

    Raises:
        ConfigError: onnx / onnxscript are not installed (install the ``deploy`` extra), or
            bad arguments.
        ShapeError, RunError: see :func:`program`.
    """
    require("onnx", "ONNX export")
    require("onnxscript", "ONNX export")
    target = Path(path)
    if not target.parent.is_dir():
        raise ConfigError(f"path {str(path)!r}: the folder {str(target.parent)!r} does not exist")
    if opset is not None and (not isinstance(opset, int) or isinstance(opset, bool) or opset < 7):
        raise ConfigError(f"opset must be an int >= 7 or None, got {opset!r}")
    args, kwargs = as_inputs(example_input)
    exported = program(model, example_input, dynamic=dynamic)
    names = list(kwargs) or (
        ["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))]
    )
    with _quiet_exporter():
        try:
            converted = _convert(exported, names, opset)
        except Exception as exc:
            raise RunError(
                f"the ONNX exporter could not convert {type(model).__name__}: {type(exc).__name__}: {exc}"
            ) from exc
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        converted.save(tmp, external_data=False)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
