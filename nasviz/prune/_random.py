"""Random pruning, the baseline: uniform layer sparsity or Erdős–Rényi-kernel (ERK) ratios.

ERK gives layer ``l`` a density proportional to ``sum(shape_l) / prod(shape_l)`` (for a conv:
``(n_in + n_out + k_h + k_w) / (n_in * n_out * k_h * k_w)``), scaled so the whole model keeps
``1 - sparsity`` of its weights; layers whose density would exceed 1 are kept dense and the rest
re-scaled (the RigL procedure).
"""

from __future__ import annotations

import torch
from torch import nn

from nasviz.errors import ConfigError
from nasviz.prune._magnitude import lowest_k
from nasviz.prune._masks import Masks, check_sparsity, prunable

__all__ = ["erk_densities", "random"]

DISTRIBUTIONS = ("uniform", "erk")


def erk_densities(shapes: dict[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
    """Per-tensor densities by the ERK rule that keep ``1 - sparsity`` of all weights."""
    sizes = {n: float(torch.Size(s).numel()) for n, s in shapes.items()}
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}
    budget = (1.0 - sparsity) * sum(sizes.values())
    dense: set[str] = set()
    while True:
        rest = [n for n in shapes if n not in dense]
        left = budget - sum(sizes[n] for n in dense)
        scale = left / sum(raw[n] * sizes[n] for n in rest) if rest else 0.0
        over = [n for n in rest if raw[n] * scale > 1.0]
        if not over:
            break
        dense.update(over)
    return {n: 1.0 if n in dense else raw[n] * scale for n in shapes}


def random(
    model: nn.Module, sparsity: float, distribution: str = "uniform", seed: int = 0
) -> Masks:
    """Masks that prune randomly chosen weights.

    Args:
        model: read, never changed.
        sparsity: overall fraction to prune, in [0, 1).
        distribution: ``"uniform"`` (every tensor at ``sparsity``) or ``"erk"``.
        seed: fixes the choice.
    """
    sparsity = check_sparsity(sparsity)
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    weights = prunable(model)
    if distribution == "uniform":
        density = dict.fromkeys(weights, 1.0 - sparsity)
    else:
        density = erk_densities({n: tuple(w.shape) for n, w in weights.items()}, sparsity)
    gen = torch.Generator().manual_seed(seed)
    masks = {}
    for n, w in weights.items():
        scores = torch.rand(w.numel(), generator=gen)  # (numel,) uniform scores: lowest are pruned
        masks[n] = lowest_k(scores, round((1.0 - density[n]) * w.numel())).view(w.shape)
    return Masks(
        masks, meta={"method": f"random-{distribution}", "sparsity": sparsity, "seed": seed}
    )
