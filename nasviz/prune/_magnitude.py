"""Magnitude pruning: drop the weights of smallest absolute value, per layer or globally.

Selection uses :func:`torch.kthvalue` on the absolute values (no full sort, no Python lists;
global scope brackets the threshold with a sample and never concatenates the model), then breaks
ties at the threshold in index order so that exactly ``round(sparsity * n)`` weights are pruned,
the count :func:`torch.nn.utils.prune.global_unstructured` prunes with ``L1Unstructured``.

The tie rule (see :func:`magnitude`): weights whose ``|w|`` equals the threshold are pruned
first-come in index order. torch picks among tied weights with :func:`torch.topk`, whose choice
among equal values is unspecified, so the two select the same weights exactly when no tie
straddles the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nasviz._compat import renamed_arguments
from nasviz.errors import ConfigError
from nasviz.prune._masks import Masks, check_sparsity, prunable

__all__ = ["kth_smallest_abs", "lowest_k", "magnitude"]

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
    """The k-th smallest entry (1-based) of a 1-D tensor, exactly (see :func:`kth_smallest_abs`
    for how big tensors avoid a full selection)."""
    if scores.numel() <= 8 * sample:
        return torch.kthvalue(scores, k).values
    return _bracketed([scores], k, sample, absolute=False)


def kth_smallest_abs(tensors: list[torch.Tensor], k: int, sample: int = 1 << 20) -> torch.Tensor:
    """The k-th smallest (1-based) of ``|t|`` over all entries of ``tensors``, as float32,
    without concatenating them (no copy of the whole model).

    A random sample brackets the answer between two of its quantiles; one pass per tensor
    counts the entries below the bracket and keeps the few inside it, and
    :func:`torch.kthvalue` on those gives the exact answer (a full selection when the bracket
    misses, which the margin makes vanishingly rare).
    """
    n = sum(t.numel() for t in tensors)
    if n <= 8 * sample:
        flat = torch.cat([_abs32(t) for t in tensors])  # (n,) small enough to copy
        return torch.kthvalue(flat, k).values
    return _bracketed(tensors, k, sample, absolute=True)


def _abs32(t: torch.Tensor) -> torch.Tensor:
    """``|t|`` flattened, in float32 (float64 stays float64)."""
    a = t.detach().reshape(-1).abs()
    return a if a.dtype == torch.float64 else a.to(torch.float32)


def _bracketed(tensors: list[torch.Tensor], k: int, sample: int, absolute: bool) -> torch.Tensor:
    value = _abs32 if absolute else (lambda t: t.detach().reshape(-1))
    n = sum(t.numel() for t in tensors)
    gen = torch.Generator().manual_seed(n + k)
    probe = torch.cat(
        [
            value(t.detach().reshape(-1)[torch.randint(t.numel(), (m,), generator=gen)])
            for t in tensors
            if (m := max(1, sample * t.numel() // n))
        ]
    )  # (~sample,) drawn from every tensor in proportion to its size
    q, size = k / n, probe.numel()
    margin = 6.0 * (q * (1.0 - q) / size) ** 0.5 + 2.0 / size
    lo = torch.kthvalue(probe, max(1, math.floor((q - margin) * size))).values
    hi = torch.kthvalue(probe, min(size, math.ceil((q + margin) * size))).values
    below, band = 0, []
    for t in tensors:
        v = value(t)  # (numel,) one tensor at a time
        below += int(torch.count_nonzero(v < lo))
        band.append(v[(v >= lo) & (v <= hi)])
        del v
    inside = torch.cat(band)
    need = k - below
    if 1 <= need <= inside.numel():
        return torch.kthvalue(inside, need).values
    return torch.kthvalue(torch.cat([value(t) for t in tensors]), k).values


def _global_keep(weights: list[torch.Tensor], k: int, sample: int = 1 << 20) -> list[torch.Tensor]:
    """Keep-masks (one per tensor, its shape) that prune the ``k`` smallest ``|w|`` over all
    tensors together; ties at the threshold pruned in global index order (as
    :func:`lowest_k` on the concatenation)."""
    n = sum(w.numel() for w in weights)
    if k <= 0 or k >= n:
        return [torch.full(w.shape, k <= 0, dtype=torch.bool) for w in weights]
    threshold = kth_smallest_abs(weights, k, sample)
    keeps, ties, missing = [], [], k
    for w in weights:
        v = _abs32(w)
        keeps.append(v > threshold)  # (numel,) strictly above the threshold: kept
        tie = v == threshold
        ties.append(tie if bool(tie.any()) else None)
        missing -= int(torch.count_nonzero(v < threshold))
        del v
    for keep, tie in zip(
        keeps, ties, strict=True
    ):  # ties: prune the first `missing`, keep the rest
        if tie is None:
            continue
        at = torch.nonzero(tie).flatten()
        keep[at[min(missing, at.numel()) :]] = True
        missing = max(0, missing - at.numel())
    return [keep.view(w.shape) for w, keep in zip(weights, keeps, strict=True)]


@renamed_arguments(params="include")
def magnitude(
    model: nn.Module,
    sparsity: float,
    scope: str = "global",
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> Masks:
    """Masks that prune the ``sparsity`` fraction of weights with the smallest |w|.

    Exactly ``k = round(sparsity * n)`` weights are pruned (Python's ``round``, half to even, as
    :mod:`torch.nn.utils.prune` counts), ``n`` being all selected weights (``"global"``) or one
    tensor's (``"layer"``). The threshold ``t`` is the k-th smallest ``|w|`` (compared in
    float32; float64 stays float64). Every weight with ``|w| < t`` is pruned and every weight
    with ``|w| > t`` kept. **Ties:** weights with ``|w| == t`` are pruned in index order until
    ``k`` are pruned, the rest of them kept. Index order is the order of the parameters (the
    model's ``named_parameters`` order, or the order of ``include``), each flattened row-major;
    with ``scope="layer"``, the tensor's own flattened order.

    Without ties at the threshold (almost surely so for trained or randomly initialized float
    weights) the masks equal ``torch.nn.utils.prune.global_unstructured(...,
    pruning_method=L1Unstructured, amount=sparsity)`` (``"layer"``: ``l1_unstructured`` per
    tensor). With ties, torch prunes the same number of weights and the same weights below the
    threshold, but picks the tied ones by :func:`torch.topk`, whose choice among equal values is
    unspecified, so those may differ. Ties are common in one case: weights already pruned to 0
    by applied masks tie at 0, so pruning a masked model again at a sparsity no higher than its
    current one prunes its zeros in index order, not necessarily the same zeros as before.

    Args:
        model: the model; read, never changed (its applied masks count: pruned weights are 0).
        sparsity: fraction to prune, in [0, 1).
        scope: ``"global"`` ranks all weights together (layers end up with different
            sparsities); ``"layer"`` prunes each tensor to ``sparsity``.
        include: parameter names to prune (was ``params``); default every Linear/Conv weight.
        exclude: parameter names, or module names (all their weights), never pruned.

    Returns:
        The masks (True keeps a weight), with ``meta`` recording method, sparsity and scope.
    """
    sparsity = check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {SCOPES}, got {scope!r}")
    weights = _select(model, include, exclude)
    meta = {"method": "magnitude", "sparsity": sparsity, "scope": scope}
    if scope == "layer":
        masks = {
            n: lowest_k(w.abs().flatten(), round(sparsity * w.numel())).view(w.shape)
            for n, w in weights.items()
        }
        return Masks(masks, meta=meta)
    total = sum(w.numel() for w in weights.values())
    with torch.no_grad():
        keeps = _global_keep(list(weights.values()), round(sparsity * total))
    return Masks(dict(zip(weights, keeps, strict=True)), meta=meta)


def _select(
    model: nn.Module, include: Sequence[str] | None, exclude: Sequence[str] | None
) -> dict[str, torch.Tensor]:
    from nasviz.prune._masks import named_weights

    every = {n: t.detach() for n, _, _, t in named_weights(model)}
    if include is None:
        chosen = prunable(model)
    else:
        unknown = [p for p in include if p not in every]
        if unknown or not include:
            raise ConfigError(
                f"include must name parameters of the model; unknown: {unknown}, "
                f"known: {list(every)[:8]}"
            )
        chosen = {p: every[p] for p in include}
    if exclude is None:
        return chosen
    modules = {n for n, _ in model.named_modules()} - {""}
    unknown = [e for e in exclude if e not in every and e not in modules]
    if unknown or not exclude:
        raise ConfigError(
            f"exclude must name parameters or modules of the model; unknown: {unknown}, "
            f"known: {list(every)[:8]}"
        )
    left = {
        n: w
        for n, w in chosen.items()
        if n not in exclude and not any(n.startswith(f"{e}.") for e in exclude)
    }
    if not left:
        raise ConfigError(f"exclude={list(exclude)} leaves no weight to prune")
    return left
