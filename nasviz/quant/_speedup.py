"""Which Linear layers run faster in dynamic int8: each one timed in fp32 and in int8 on the
inputs it receives from an example, side by side.

fbgemm's dynamic int8 kernel pays a fixed cost per call (quantizing and packing the input,
requantizing the output), so at small batches a layer with few weights (a 10-class head, a
narrow input layer) can run slower in int8 than in fp32 while a wide one runs faster. torchao's
autoquant makes the same choice by timing; here the measurement is a table the user reads and
passes on::

    speed = int8_speedups(model, example)          # one row per Linear layer
    faster = list(speed.index[speed["speedup"] > 1])
    fast = quantize(model, mode="dynamic", include=faster) if faster else model

(small models at batch 1 may have no layer that gains: keep them in fp32).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nasviz.errors import ConfigError, ShapeError
from nasviz.quant._targets import Target

__all__ = ["int8_speedups"]


def _input_of(args: tuple, kwargs: Mapping[str, Any]) -> torch.Tensor | None:
    return next(
        (v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)),
        None,
    )


def _bare(layer: nn.Module) -> nn.Module:
    """A copied layer without the user's forward hooks (they would fire on every timed call),
    on the CPU."""
    for hooks in (
        layer._forward_hooks,
        layer._forward_pre_hooks,
        layer._forward_hooks_with_kwargs,
        layer._forward_pre_hooks_with_kwargs,
        layer._forward_hooks_always_called,
    ):
        hooks.clear()
    return layer.cpu()


def _calls(model: nn.Module, example_input: Any, targets: Mapping[str, Target]) -> dict:
    """name -> Counter of the input shapes each target layer receives in one forward of
    ``model`` on ``example_input`` (eval mode, no autograd; every module's mode is restored and
    every hook removed, also when the forward fails)."""
    from nasviz.data._batch import call_model
    from nasviz.training._model import eval_mode

    seen: dict[str, Counter] = {}

    def hook(name: str):
        def record(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            x = _input_of(args, kwargs)
            if x is not None:
                seen.setdefault(name, Counter())[tuple(x.shape)] += 1

        return record

    handles = [
        t.module.register_forward_pre_hook(hook(n), with_kwargs=True) for n, t in targets.items()
    ]
    restore = eval_mode(model)
    try:
        with torch.no_grad():
            call_model(model, example_input)
    finally:
        restore()
        for handle in handles:
            handle.remove()
    return seen


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
    (the kernel ``quantize(mode="dynamic")`` runs) on inputs of the shapes it receives from
    ``example_input``, fp32 and int8 in interleaved rounds.

    The model is never changed: copies of its layers (pruning masks applied, hooks left off)
    are timed, on the CPU where the int8 kernels run; layers of one kind, weight shape and
    input shape are timed once. A layer called several times in one forward counts every
    call; layers the example does not reach are left out.

    Args:
        model: a float32 model that is not quantized yet (a supernet: export the subnet
            first). Layers attention reads directly (MultiheadAttention's out_proj,
            TransformerEncoderLayer's linear1/linear2) are left out, as quantize leaves them
            in fp32.
        example_input: what ``model`` takes, at the batch size to deploy with: a tensor, or a
            dict of keyword inputs such as ``{"input_ids": ...}``.
        include, exclude: layer names or glob patterns, as for :func:`quantize`.
        threads: intra-op threads while timing (the deployment's setting; 1 by default).
        rounds: interleaved rounds (each times every layer both ways, 20 calls each).

    Returns:
        a DataFrame indexed by layer: ``kind``, ``input shape`` (the most frequent one),
        ``calls`` (per forward), ``fp32 ms`` and ``int8 ms`` (medians per call, summed over the
        forward's calls) and ``speedup`` (fp32 / int8; above 1: faster in int8).

    Raises:
        ConfigError: the model is already quantized or not float32, has no such layer, the
            example reaches none of them, or an argument is out of range. ShapeError:
            ``example_input`` does not fit, or has no batch dimension.
    """
    from nasviz.hardware._interleave import measure_interleaved
    from nasviz.prune import copy_model
    from nasviz.quant._ptq import _check_model, _selected, dynamic_layers, quantize

    _check_model(model, "int8_speedups")
    for name, value in (("threads", threads), ("rounds", rounds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive int, got {value!r}")
    selected = _selected(model, include, exclude, 8)
    names = dynamic_layers(model, selected, selected)
    if not names:
        raise ConfigError(
            "int8_speedups times Linear and GPT-2 Conv1D layers; the selected layers are "
            + ", ".join(f"{n} ({t.kind})" for n, t in list(selected.items())[:8])
        )
    targets = {n: selected[n] for n in names}
    calls = _calls(model, example_input, targets)
    if not calls:
        raise ConfigError(
            f"a forward on the example input reached none of the layers to time: "
            f"{', '.join(list(targets)[:8])}"
        )
    flat = [(n, s) for n, shapes in calls.items() for s in shapes if len(s) < 2]
    if flat:
        raise ShapeError(
            f"int8 kernels take inputs with a batch dimension; layer {flat[0][0]!r} receives "
            f"shape {flat[0][1]}: give the example input a batch dimension (x.unsqueeze(0))"
        )

    def key(name: str, shape: tuple[int, ...]) -> tuple:
        t = targets[name]
        return (t.kind, t.shape, getattr(t.module, "bias", None) is not None, shape)

    entries, done = [], set()
    for name, shapes in calls.items():
        for shape in shapes:
            k = key(name, shape)
            if k in done:
                continue
            done.add(k)
            layer = _bare(copy_model(nn.Sequential(targets[name].module), plain=True)[0])
            entries.append(((k, "fp32"), layer, shape))
            entries.append(((k, "int8"), quantize(nn.Sequential(layer), mode="dynamic")[0], shape))
    timed = measure_interleaved(
        entries,
        runtime="eager",
        device=torch.device("cpu"),
        threads=threads,
        repeats=20,
        warmup=3,
        rounds=rounds,
    ).times
    median = {k: float(np.median(v)) for k, v in timed.items()}
    rows = []
    for name, shapes in calls.items():
        fp32 = sum(n * median[(key(name, s), "fp32")] for s, n in shapes.items())
        int8 = sum(n * median[(key(name, s), "int8")] for s, n in shapes.items())
        shape = shapes.most_common(1)[0][0]
        rows.append(
            (name, targets[name].kind, shape, sum(shapes.values()), fp32, int8, fp32 / int8)
        )
    columns = ["layer", "kind", "input shape", "calls", "fp32 ms", "int8 ms", "speedup"]
    return pd.DataFrame(rows, columns=columns).set_index("layer")
