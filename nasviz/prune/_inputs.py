"""Example inputs for tracing and checking pruned models, and reading their outputs.

A token model (a Hugging Face language model, or any model whose first layer is an embedding)
gets integer token ids of the shape asked for (seeded, within its vocabulary); a float tensor
given for one is a ConfigError, never a confusing failure deep inside the model. Outputs are
read as every tensor they hold: a tensor, tuples and lists, dicts and Hugging Face
``ModelOutput`` s (key/value caches left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nasviz.errors import ConfigError
from nasviz.hf import find_adapter
from nasviz.objectives import _example_input

__all__ = ["example_input_for", "output_tensors"]


def _token_vocab(model: nn.Module) -> int | None:
    """The vocabulary size when ``model`` takes token ids, else None."""
    adapter = find_adapter(model)
    if adapter is not None:
        return int(adapter.config.vocab_size) if adapter.input_name == "input_ids" else None
    if _example_input(model, (1,), None).is_floating_point():
        return None
    embedding = next(m for m in model.modules() if isinstance(m, nn.Embedding))
    return embedding.num_embeddings


def _input_of_shape(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """A seeded input of ``shape``: token ids for token models, else normal noise."""
    g = torch.Generator().manual_seed(0)
    vocab = _token_vocab(model)
    if vocab is not None:
        return torch.randint(0, vocab, shape, generator=g)
    return torch.randn(shape, generator=g)


def example_input_for(model: nn.Module, example_input: Any = None) -> Any:
    """An example input for tracing: the one given (a tensor, or a shape with batch: token ids
    for token models), the model's ``input_shape`` attribute, a Hugging Face model's own
    example, or one guessed from its first layer."""
    if isinstance(example_input, torch.Tensor):
        if example_input.is_floating_point() and _token_vocab(model) is not None:
            raise ConfigError(
                f"{type(model).__name__} takes token ids (its first layer is an embedding), but example_input "
                f"is a {example_input.dtype} tensor; pass integer ids, or a shape such as "
                f"{tuple(example_input.shape[:2])} and nasviz makes ids"
            )
        return example_input
    if example_input is not None:
        if isinstance(example_input, tuple | list) and all(
            isinstance(d, int) and d > 0 for d in example_input
        ):
            return _input_of_shape(model, tuple(example_input))
        raise ConfigError(
            f"example_input must be a tensor or a shape with batch such as (1, 64), got {example_input!r}"
        )
    adapter = find_adapter(model)
    if adapter is not None:
        return adapter.example_input(2, 8)[adapter.input_name]
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple | list) and shape:
        return torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
    for module in model.modules():
        if isinstance(module, nn.Linear):
            return torch.randn(2, module.in_features, generator=torch.Generator().manual_seed(0))
        if isinstance(module, nn.modules.conv._ConvNd):
            dims = len(module.kernel_size)
            return torch.randn(
                2, module.in_channels, *([8] * dims), generator=torch.Generator().manual_seed(0)
            )
        if isinstance(module, nn.Embedding):
            return torch.zeros(2, 8, dtype=torch.long)
    raise ConfigError(
        f"cannot guess an input for {type(model).__name__}; pass example_input=(batch, ...)"
    )


def output_tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor of a model output: a tensor, a tuple / list, or a dict / Hugging Face
    ``ModelOutput`` (key/value caches left out: their layout is the model's business)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        items = [v for k, v in out.items() if k != "past_key_values"]
    elif isinstance(out, tuple | list):
        items = list(out)
    else:
        return []
    return [t for item in items for t in output_tensors(item)]
