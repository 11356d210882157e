"""Runtimes a forward pass is timed on: eager PyTorch, ``torch.compile`` and ONNX Runtime.

:func:`prepare` turns a model and an example input into a callable that runs one forward to
completion (a CUDA forward is synchronized before it returns, so a timer around the call
measures the work, not the launch). Preparing is untimed: ``torch.compile`` compiles and ONNX
Runtime exports and loads the model there. :func:`time_calls` is the one timing loop.

Runtimes:
    * ``"eager"`` — the model's own forward.
    * ``"compile"`` — ``torch.compile(model, dynamic=False)``; on CPU, inductor needs a C++
      compiler (``g++``).
    * ``"onnxruntime"`` — the model exported with :func:`nasviz.export.onnx` and run by an ONNX
      Runtime ``InferenceSession`` (CPU provider, or CUDA with ``onnxruntime-gpu``); needs the
      ``deploy`` extra.

The user's model is never changed: a model on another device than the one asked for is copied
there; compiling wraps it; exporting reads it.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasviz.errors import ConfigError, RunError
from nasviz.export import _deps

__all__ = [
    "RUNTIMES",
    "check_runtime",
    "installed_runtimes",
    "model_device",
    "prepare",
    "resolve_device",
    "time_calls",
]

RUNTIMES = ("eager", "compile", "onnxruntime")

#: recompilations torch.compile may make while nasviz measures (every exported subnet of one
#: family shares its forward's code, so dynamo's default limit of 8 would fall back to eager)
_RECOMPILE_LIMIT = 1024


def installed_runtimes() -> list[str]:
    """The runtimes this environment can run (onnxruntime only with the ``deploy`` extra)."""
    return [r for r in RUNTIMES if r != "onnxruntime" or _deps.installed("onnxruntime")]


def check_runtime(runtime: Any) -> str:
    """``runtime`` if it is a known and installed runtime, else a ConfigError that lists the
    runtimes and says which are installed (and which extra brings the missing one)."""
    if runtime not in RUNTIMES:
        raise ConfigError(
            f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}; installed here: "
            f"{installed_runtimes()}"
        )
    if runtime == "onnxruntime":
        _deps.require("onnxruntime", "runtime='onnxruntime'")
        _deps.require("onnx", "runtime='onnxruntime' (it exports the model to ONNX)")
        _deps.require("onnxscript", "runtime='onnxruntime' (it exports the model to ONNX)")
    return runtime


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: Any, model: nn.Module | None = None) -> torch.device:
    """``device`` as a ``torch.device``: None means the model's device (CPU without a model),
    ``"auto"`` the first GPU when there is one, else the CPU.

    Raises:
        ConfigError: not a device name, or a device this machine does not have (the message
            lists the ones it has).
    """
    if device is None:
        return model_device(model) if model is not None else torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device must be a torch device or one of {[*_devices(), 'auto']}, got {device!r}"
        ) from exc
    ok = resolved.type == "cpu" or (
        resolved.type == "cuda"
        and torch.cuda.is_available()
        and (resolved.index is None or resolved.index < torch.cuda.device_count())
    )
    ok = ok or (resolved.type == "mps" and "mps" in _devices())
    if not ok:
        raise ConfigError(f"device {device!r} is not available here; available: {_devices()}")
    return resolved


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def time_calls(
    run: Callable[[], Any], repeats: int, warmup: int, clock: Callable[[], float]
) -> list[float]:
    """Calls ``run`` ``warmup`` times untimed, then ``repeats`` times, each timed with
    ``clock`` (seconds); returns the timed calls in milliseconds, in call order."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        t0 = clock()
        run()
        times.append((clock() - t0) * 1e3)
    return times


def _on_device(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` itself when it is on ``device``, else a copy moved there (never the user's)."""
    return model if model_device(model) == device else copy.deepcopy(model).to(device)


@contextlib.contextmanager
def prepare(
    model: nn.Module,
    example: torch.Tensor,
    runtime: str,
    device: torch.device,
    threads: int,
) -> Iterator[Callable[[], Any]]:
    """A callable running one forward of ``model`` on ``example`` (moved to ``device``) with
    ``runtime``, synchronized; valid inside the ``with`` block. Call it with grad disabled.

    ``threads`` is the intra-op thread count ONNX Runtime's session uses (torch's own count is
    the caller's to set). Raises RunError when compiling or exporting fails.
    """
    sync = synchronizer(device)
    x = example.to(device)
    if runtime == "eager":
        module = _on_device(model, device)

        def run() -> Any:
            out = module(x)
            sync()
            return out

        yield run
    elif runtime == "compile":
        with torch._dynamo.config.patch(
            recompile_limit=_RECOMPILE_LIMIT, accumulated_recompile_limit=_RECOMPILE_LIMIT
        ):
            compiled = torch.compile(_on_device(model, device), dynamic=False)

            def run() -> Any:
                out = compiled(x)
                sync()
                return out

            try:
                run()  # compiles
            except Exception as exc:
                raise RunError(
                    f"torch.compile could not compile {type(model).__name__}: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                    "(on CPU it needs a C++ compiler: apt-get install g++)"
                ) from exc
            yield run
    else:
        with _onnx_session(model, x, device, threads) as run:
            yield run


@contextlib.contextmanager
def _onnx_session(
    model: nn.Module, x: torch.Tensor, device: torch.device, threads: int
) -> Iterator[Callable[[], Any]]:
    import onnxruntime as ort

    from nasviz.export import onnx

    if device.type == "cuda":
        provider = "CUDAExecutionProvider"
        if provider not in ort.get_available_providers():
            raise ConfigError(
                "runtime='onnxruntime' on a CUDA device needs onnxruntime's CUDA provider "
                "(install onnxruntime-gpu instead of onnxruntime); available providers: "
                f"{ort.get_available_providers()}"
            )
        options = {"device_id": device.index or 0}
    elif device.type == "cpu":
        provider, options = "CPUExecutionProvider", {}
    else:
        raise ConfigError(f"runtime='onnxruntime' runs on cpu or cuda, not {device.type!r}")
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = threads
    settings.inter_op_num_threads = 1
    settings.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory(prefix="nasviz-onnx-") as folder:
        path = onnx(model, x.cpu(), Path(folder) / "model.onnx")
        try:
            session = ort.InferenceSession(
                str(path), settings, providers=[provider], provider_options=[options]
            )
        except Exception as exc:
            raise RunError(f"ONNX Runtime could not load the exported model: {exc}") from exc
    feeds = {session.get_inputs()[0].name: np.ascontiguousarray(x.cpu().numpy())}

    def run() -> Any:
        return session.run(None, feeds)

    yield run
