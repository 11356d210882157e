"""Magnitude pruning: drop the weights of smallest absolute value, per layer or globally.

Selection uses :func:`torch.kthvalue` on the absolute values (no full sort, no Python lists),
then breaks ties at the threshold in index order so exactly ``round(sparsity * n)`` weights are
pruned, as :func:`torch.nn.utils.prune.global_unstructured` does with ``L1Unstructured``.
"""

from __future__ import annotations

import torch
from torch import nn

from nasviz.errors import ConfigError
from nasviz.prune._masks import Masks, check_sparsity, prunable

__all__ = ["lowest_k", "magnitude"]

SCOPES = ("layer", "global")


def lowest_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """A bool keep-mask of ``scores`` (1-D) with its ``k`` lowest entries False.

    Ties at the threshold are pruned in index order, so exactly ``k`` entries are dropped.
    """
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    if k <= 0:
        return keep
    if k >= scores.numel():
        return torch.zeros_like(keep)
    threshold = _kth_smallest(scores, k)
    below = scores < threshold
    keep &= ~below
    missing = k - int(below.sum())
    if missing > 0:  # prune the first `missing` entries that equal the threshold
        at = torch.nonzero(scores == threshold).flatten()[:missing]
        keep[at] = False
    return keep


def _kth_smallest(scores: torch.Tensor, k: int, sample: int = 1 << 20) -> torch.Tensor:
    """The k-th smallest entry (1-based) of a 1-D tensor, exactly.

    Big tensors first bracket the answer between two quantiles of a random sample, then run
    :func:`torch.kthvalue` on the few entries inside the bracket (vectorized passes only);
    when the bracket misses, the full :func:`torch.kthvalue` answers.
    """
    n = scores.numel()
    if n <= 8 * sample:
        return torch.kthvalue(scores, k).values
    gen = torch.Generator().manual_seed(n + k)
    probe = scores[torch.randint(n, (sample,), generator=gen)]
    q = k / n
    margin = 6.0 * (q * (1.0 - q) / sample) ** 0.5 + 2.0 / sample
    lo = torch.quantile(probe, max(q - margin, 0.0))
    hi = torch.quantile(probe, min(q + margin, 1.0))
    below = int((scores < lo).sum())
    band = scores[(scores >= lo) & (scores <= hi)]
    need = k - below
    if 1 <= need <= band.numel():
        return torch.kthvalue(band, need).values
    return torch.kthvalue(scores, k).values


def magnitude(
    model: nn.Module,
    sparsity: float,
    scope: str = "global",
    params: list[str] | None = None,
) -> Masks:
    """Masks that prune the ``sparsity`` fraction of weights with the smallest |w|.

    Args:
        model: the model; read, never changed (its applied masks count: pruned weights are 0).
        sparsity: fraction to prune, in [0, 1).
        scope: ``"global"`` ranks all weights together (layers end up with different
            sparsities); ``"layer"`` prunes each tensor to ``sparsity``.
        params: parameter names to prune; default every Linear/Conv weight.

    Returns:
        Masks whose global variant equals ``torch.nn.utils.prune.global_unstructured(...,
        pruning_method=L1Unstructured, amount=sparsity)`` on the same parameters.
    """
    sparsity = check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {SCOPES}, got {scope!r}")
    weights = _select(model, params)
    meta = {"method": "magnitude", "sparsity": sparsity, "scope": scope}
    if scope == "layer":
        masks = {
            n: lowest_k(w.abs().flatten(), round(sparsity * w.numel())).view(w.shape)
            for n, w in weights.items()
        }
        return Masks(masks, meta=meta)
    with torch.no_grad():
        flat = torch.cat([w.abs().flatten().to(torch.float32) for w in weights.values()])  # (N,)
        keep = lowest_k(flat, round(sparsity * flat.numel()))
        del flat
    masks, start = {}, 0
    for n, w in weights.items():
        masks[n] = keep[start : start + w.numel()].view(w.shape)
        start += w.numel()
    return Masks(masks, meta=meta)


def _select(model: nn.Module, params: list[str] | None) -> dict[str, torch.Tensor]:
    if params is None:
        return prunable(model)
    from nasviz.prune._masks import named_weights

    every = {n: t.detach() for n, _, _, t in named_weights(model)}
    unknown = [p for p in params if p not in every]
    if unknown or not params:
        raise ConfigError(
            f"params must name parameters of the model; unknown: {unknown}, "
            f"known: {list(every)[:8]}"
        )
    return {p: every[p] for p in params}
