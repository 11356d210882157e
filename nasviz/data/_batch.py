"""The batch convention: what one batch is, how it moves to a device, how a model takes it.

A batch is one of

* a tuple or list ``(inputs, targets, *more)`` of tensors, or ``(inputs,)`` without targets,
  as a DataLoader over a ``TensorDataset`` yields them; the model is called as
  ``model(inputs)``;
* a mapping of tensors as Hugging Face models take them (``input_ids``, ``attention_mask``,
  ``labels``, ...): the model is called with every key but ``labels`` as keyword arguments
  (encoder-decoder models get ``labels`` too: they build their decoder inputs from them), and
  ``labels`` are the targets.

Anything else is the caller's to handle with a ``batch_fn(model, batch) -> (outputs, targets)``.
Outputs are a tensor, or an object with ``.logits`` (Hugging Face), or a tuple whose first item
is the logits; :func:`logits_of` picks the tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from nasviz.errors import ConfigError, NasvizError, ShapeError

__all__ = [
    "LABELS",
    "BatchFn",
    "batch_len",
    "call_model",
    "default_batch_fn",
    "describe",
    "is_batch",
    "logits_of",
    "move",
    "split_batch",
]

#: The key of the targets in a dict batch (Hugging Face's name).
LABELS = "labels"

BatchFn = Callable[[Any, Any], tuple[Any, Any]]


def is_batch(value: Any) -> bool:
    """Whether ``value`` has the shape of a batch (a tensor, a tuple / list, a mapping)."""
    return isinstance(value, torch.Tensor | tuple | list | Mapping)


def describe(value: Any) -> str:
    """A short description of a batch or outputs for messages: shapes and dtypes, or keys."""
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    return type(value).__name__


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of a batch (targets None when it has none)."""
    if isinstance(batch, Mapping):
        return {k: v for k, v in batch.items() if k != LABELS}, batch.get(LABELS)
    if isinstance(batch, tuple | list):
        if not batch:
            raise ShapeError("a batch is an empty tuple; expected (inputs, targets)")
        return batch[0], (batch[1] if len(batch) > 1 else None)
    if isinstance(batch, torch.Tensor):
        return batch, None
    raise ConfigError(
        f"a batch must be a tuple (inputs, targets), a dict of tensors or a tensor; got "
        f"{type(batch).__name__}. Pass batch_fn=lambda model, batch: (outputs, targets) for "
        "anything else"
    )


def _takes_labels(model: Any) -> bool:
    """Encoder-decoder Hugging Face models build their decoder inputs from ``labels``."""
    return bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))


def call_model(model: Any, inputs: Any, labels: Any = None) -> Any:
    """``model(inputs)``, or ``model(**inputs)`` for a dict; a failure that is not nasviz's own
    becomes a ShapeError naming the inputs' shapes or keys."""
    try:
        if isinstance(inputs, Mapping):
            if labels is not None and _takes_labels(model):
                inputs = {**inputs, LABELS: labels}
            return model(**inputs)
        return model(inputs)
    except NasvizError:
        raise
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, TypeError, IndexError, ValueError, AttributeError) as exc:
        what = (
            f"an input of shape {tuple(inputs.shape)}"
            if isinstance(inputs, torch.Tensor)
            else f"inputs {describe(inputs)}"
        )
        raise ShapeError(
            f"forward pass on {what} failed: the model ({type(model).__name__}) cannot take "
            f"{describe(inputs)}; it raised {type(exc).__name__}: {exc}"
        ) from exc


def default_batch_fn(model: Any, batch: Any) -> tuple[Any, Any]:
    """The batch convention's ``batch_fn``: ``(model outputs, targets)``."""
    inputs, targets = split_batch(batch)
    return call_model(model, inputs, targets), targets


def logits_of(outputs: Any) -> torch.Tensor:
    """The tensor in a model's outputs: itself, ``.logits``, ``["logits"]`` or the first item."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    logits = getattr(outputs, "logits", None)
    if logits is None and isinstance(outputs, Mapping):
        logits = outputs.get("logits")
    if logits is None and isinstance(outputs, tuple | list) and outputs:
        logits = outputs[0]
    if not isinstance(logits, torch.Tensor):
        raise ShapeError(
            f"cannot find the logits in the model's outputs ({describe(outputs)}); return a "
            "tensor, or pass batch_fn=lambda model, batch: (logits, targets)"
        )
    return logits


def move(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """The batch with every tensor on ``device`` (tuples stay tuples, mappings become dicts)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: move(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(move(v, device, non_blocking) for v in batch)
    return batch


def pin(batch: Any) -> Any:
    """The batch with its CPU tensors in page-locked memory (for non-blocking copies to CUDA)."""
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory() if batch.device.type == "cpu" else batch
    if isinstance(batch, Mapping):
        return {k: pin(v) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(pin(v) for v in batch)
    return batch


def batch_len(batch: Any) -> int:
    """Examples in a batch: the length of its first tensor (0 when it holds none)."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.ndim else 1
    values = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(values, tuple | list) or isinstance(batch, Mapping):
        for v in values:
            if isinstance(v, torch.Tensor):
                return batch_len(v)
    return 0
