"""Which Linear layers run faster in dynamic int8: each one timed in fp32 and in int8 on the
input it receives from an example, side by side.

fbgemm's dynamic int8 kernel pays a fixed cost per call (quantizing the input, packing it,
requantizing the output: about 13 us on one core of the machine the benchmarks ran on), so a
layer with few weights (a 10-class head, a narrow input layer) can run slower in int8 than in
fp32 at small batches, while a 1024x1024 layer runs about 2.5x faster. torchao's autoquant makes
the same choice by timing; here the measurement is a table the user reads and passes on::

    speed = int8_speedups(model, example)          # one row per Linear layer
    fast = quantize(model, mode="dynamic", include=list(speed.index[speed["speedup"] > 1]))
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nasviz.errors import ConfigError, ShapeError
from nasviz.quant._targets import Target

__all__ = ["int8_speedups"]

_DYNAMIC_KINDS = ("Linear", "Conv1D")


def _input_shapes(model: nn.Module, example_input: Any, targets: Mapping[str, Target]) -> dict:
    """name -> the shape of the first input each target layer receives in one forward of
    ``model`` on ``example_input`` (eval mode, no autograd; the model's mode is restored)."""
    from nasviz.training._model import eval_mode

    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def record(_module: nn.Module, args: tuple) -> None:
            if name not in shapes and args and isinstance(args[0], torch.Tensor):
                shapes[name] = tuple(args[0].shape)

        return record

    handles = [t.module.register_forward_pre_hook(hook(n)) for n, t in targets.items()]
    restore = eval_mode(model)
    try:
        with torch.no_grad():
            if isinstance(example_input, Mapping):
                model(**example_input)
            elif isinstance(example_input, tuple | list):
                model(*example_input)
            else:
                model(example_input)
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        raise ShapeError(
            f"the example input does not fit {type(model).__name__}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        restore()
        for handle in handles:
            handle.remove()
    return shapes


def int8_speedups(
    model: nn.Module,
    example_input: Any,
    *,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    threads: int = 1,
    rounds: int = 10,
) -> pd.DataFrame:
    """Each Linear (and GPT-2 Conv1D) layer of ``model`` timed in fp32 and in dynamic int8
    (the kernel ``quantize(mode="dynamic")`` uses) on an input of the shape it receives from
    ``example_input``, the two in interleaved rounds.

    The model is never changed: copies of its layers are timed, on the CPU (where the int8
    kernels run). Layers the example input does not reach are left out.

    Args:
        model: a model that is not quantized yet.
        example_input: what ``model`` takes (a tensor, a tuple of positional inputs, or a dict
            of keyword inputs such as ``{"input_ids": ...}``) at the batch size to deploy with.
        include, exclude: layer names or glob patterns, as for :func:`quantize`.
        threads: intra-op threads while timing (the deployment's setting; 1 by default).
        rounds: interleaved rounds (each times every layer both ways, 20 calls each).

    Returns:
        a DataFrame indexed by layer: ``kind``, ``input shape``, ``fp32 ms``, ``int8 ms`` (medians)
        and ``speedup`` (fp32 / int8; above 1: faster in int8).

    Raises:
        ConfigError: the model is already quantized, has no such layer, or an argument is out of
            range. ShapeError: ``example_input`` does not fit the model.
    """
    from nasviz.hardware._interleave import measure_interleaved
    from nasviz.quant._ptq import _check_model, _selected, quantize

    _check_model(model)
    for name, value in (("threads", threads), ("rounds", rounds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive int, got {value!r}")
    targets = {
        n: t for n, t in _selected(model, include, exclude, 8).items() if t.kind in _DYNAMIC_KINDS
    }
    if not targets:
        raise ConfigError(
            "int8_speedups times Linear (and GPT-2 Conv1D) layers; include/exclude select none"
        )
    shapes = _input_shapes(model, example_input, targets)
    entries = []
    for name, shape in shapes.items():
        layer = copy.deepcopy(targets[name].module).cpu().float()
        entries.append(((name, "fp32"), layer, shape))
        entries.append(((name, "int8"), quantize(nn.Sequential(layer), mode="dynamic"), shape))
    timed = measure_interleaved(
        entries,
        runtime="eager",
        device=torch.device("cpu"),
        threads=threads,
        repeats=20,
        warmup=3,
        rounds=rounds,
    ).times
    rows = []
    for name, shape in shapes.items():
        fp32, int8 = (float(np.median(timed[(name, k)])) for k in ("fp32", "int8"))
        rows.append((name, targets[name].kind, shape, fp32, int8, fp32 / int8))
    columns = ["layer", "kind", "input shape", "fp32 ms", "int8 ms", "speedup"]
    return pd.DataFrame(rows, columns=columns).set_index("layer")
