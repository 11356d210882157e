"""compression_report: compressed variants measured the way a search measures subnets.

Each variant is measured with :mod:`nasviz.objectives` (accuracy, params, MACs by default, under
those names), so report rows go on the same Pareto axes as a search's results; plus memory, the
number of expert modules, the change against a baseline and, optionally, the accuracy on each
value of a per-example label (e.g. each task).

Hugging Face models (any family :mod:`nasviz.hf` supports: pruned heads / neurons / layers,
pruned or merged experts) are measured by default on perplexity (causal language models) or
accuracy (classifiers), parameters and latency at the data's sequence shape.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from nasviz.errors import MoEError
from nasviz.hf import HFAdapter, find_adapter
from nasviz.moe._hf_compress import hf_expert_layers
from nasviz.moe._layer import MoE

__all__ = ["compression_report"]


def _memory_bytes(model: nn.Module) -> int:
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _eval_split(data: Any) -> Any:
    """What accuracy is measured on: a Dataset's val split, else ``data`` itself."""
    return data.val if hasattr(data, "val") and hasattr(data, "train") else data


def _hf_objectives(model: nn.Module, adapter: HFAdapter, data: Any) -> list[Any]:
    """Perplexity (causal LMs) or accuracy, params, and latency at one example's shape; the
    quality objectives are the training layer's metrics (padding never counts)."""
    from nasviz.objectives import accuracy, latency, params, perplexity
    from nasviz.prune._calibration import calibration_batches

    first = next(calibration_batches(_eval_split(data), adapter.input_name, batch_size=1))
    shape = tuple(first[adapter.input_name].shape)
    if getattr(model, "can_generate", lambda: False)():
        # keyword batches, so token ids in any form the calibration takes are measured
        quality = perplexity(list(calibration_batches(_eval_split(data), adapter.input_name)))
    else:
        quality = accuracy(data)
    return [quality, params(), latency(shape, repeats=10, warmup=2)]


def _default_objectives(data: Any, model: nn.Module) -> list[Any]:
    """accuracy, params and MACs of one example: the objectives a supernet search uses (for
    Hugging Face models :func:`_hf_objectives`)."""
    from nasviz.objectives import accuracy, macs, params

    adapter = find_adapter(model)
    if adapter is not None:
        return _hf_objectives(model, adapter, data)

    split = _eval_split(data)
    X = split[0] if isinstance(split, tuple) else getattr(split, "X", None)
    if X is None:
        raise MoEError(
            f"cannot tell the input shape of {type(data).__name__} for the MACs objective; pass "
            "a Dataset, Split or (X, y) pair, or objectives=[...] yourself"
        )
    return [accuracy(data), params(), macs((1, *X.shape[1:]))]


def _label_subsets(data: Any, label: str) -> dict[Any, Any]:
    """label value -> the Split of the evaluation examples with that value."""
    from nasviz.data import Split

    split = _eval_split(data)
    extras = getattr(split, "extras", {})
    if label not in extras:
        raise MoEError(
            f"the evaluation data has no per-example {label!r}; its extras: {list(extras)} "
            "(per-label accuracy needs a nasviz Dataset or Split carrying that label)"
        )
    values = extras[label]
    subsets = {}
    for value in torch.unique(values).tolist():
        keep = values == value
        subsets[value] = Split(
            split.X[keep], split.y[keep], {k: v[keep] for k, v in extras.items()}
        )
    return subsets


def compression_report(
    models: Mapping[str, nn.Module],
    data: Any,
    objectives: Sequence[Any] | None = None,
    baseline: str | None = None,
    label: str | None = None,
    recover: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The search's objectives, memory and (per-label) accuracy of each variant, one row per
    model, with the change against a baseline.

    The objective columns are computed by the same :mod:`nasviz.objectives` a
    :class:`~nasviz.search.Search` uses and carry the same names, so the rows go on the same
    Pareto axes as a search's results (:func:`nasviz.viz.compression_figure`). Pass the
    search's own ``objectives`` to measure exactly as it did.

    Args:
        models: name -> model (e.g. ``{"original": m, "pruned": p, "merged": q}``).
        data: a Dataset (accuracy on its val split), Split or ``(X, y)`` pair; for Hugging
            Face language models also token ids (N, T), a dict of tensors or batches.
        objectives: Objectives evaluated as ``objective(model)``; default
            ``[accuracy(data), params(), macs((1, *example_shape))]``, and for Hugging Face
            models ``[perplexity (causal LMs) or accuracy, params(), latency((1, T))]``.
        baseline: the name the others are compared to (default: the first).
        label: a per-example label of the evaluation split (e.g. ``"task"``): adds
            ``accuracy_<label>_<value>`` columns, the accuracy on that label value's examples
            only (how a variant pruned for one task does on that task).

        recover: recovers every variant but the baseline by distillation from the baseline
            (:func:`nasviz.training.recover` on a copy: the given models never change) and
            reports the copies next to them as ``"<name> recovered"``:
            ``{"data": training data, "steps": updates, **options of recover}`` (``lr``,
            ``temperature``, ``device``, ``batch_size``, ...).

    Returns:
        Columns ``name``, one per objective, ``memory_bytes``, ``experts`` (expert modules, or
        the experts of a Hugging Face MoE model),
        ``<objective>_change`` (value - baseline) for maximized objectives,
        ``<objective>_saved_fraction`` ((baseline - value) / baseline) for minimized ones and
        memory, and the per-label accuracies.
    """
    from nasviz.objectives import as_objective, evaluate_accuracy

    if not models:
        raise MoEError("compression_report needs at least one model")
    baseline = next(iter(models)) if baseline is None else baseline
    if baseline not in models:
        raise MoEError(f"baseline {baseline!r} is not one of the models {list(models)}")
    specs = (
        _default_objectives(data, next(iter(models.values())))
        if objectives is None
        else [as_objective(o) for o in objectives]
    )
    subsets = {} if label is None else _label_subsets(data, label)
    if recover is not None:
        models = {**models, **_recovered(models, baseline, recover)}
    rows = []
    for name, m in models.items():
        row: dict[str, Any] = {"name": name}
        row.update({o.name: o(m) for o in specs})
        row["memory_bytes"] = _memory_bytes(m)
        row["experts"] = sum(len(x.experts) for x in m.modules() if isinstance(x, MoE)) + sum(
            b.num_experts for b in hf_expert_layers(m).values()
        )
        for value, subset in subsets.items():
            row[f"accuracy_{label}_{value}"] = evaluate_accuracy(m, subset)
        rows.append(row)
    table = pd.DataFrame(rows)
    base = table.set_index("name").loc[baseline]
    for o in specs:
        if o.direction == "maximize":
            table[f"{o.name}_change"] = table[o.name] - base[o.name]
        else:
            table[f"{o.name}_saved_fraction"] = (base[o.name] - table[o.name]) / base[o.name]
    table["memory_saved_fraction"] = (base["memory_bytes"] - table["memory_bytes"]) / base[
        "memory_bytes"
    ]
    return table


def _recovered(
    models: Mapping[str, nn.Module], baseline: str, spec: Mapping[str, Any]
) -> dict[str, nn.Module]:
    """``"<name> recovered"``: a copy of each variant distilled from the baseline."""
    from nasviz.training import recover

    if not isinstance(spec, Mapping) or "data" not in spec or "steps" not in spec:
        raise MoEError(
            "recover must be a dict {'data': training data, 'steps': updates, **options}, got "
            f"{spec!r}"
        )
    options = {k: v for k, v in spec.items() if k != "data"}
    out: dict[str, nn.Module] = {}
    teacher = models[baseline]
    for name, model in models.items():
        if name == baseline:
            continue
        student = copy.deepcopy(model)
        run = recover(student, teacher, spec["data"], **options)  # checks everything first
        status = run.run()
        if status.state != "finished":
            raise MoEError(f"recovering {name!r} ended {status.state}: {run.error}")
        out[f"{name} recovered"] = student.eval()
    return out
