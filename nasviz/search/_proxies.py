"""Zero-cost proxies: scores of an untrained (or any) subnet from one minibatch, which rank
architectures cheaply but imperfectly (``python -m bench search_scale`` reports each one's
Kendall tau against trained accuracy).

Each is an :class:`~nasviz.objectives.Objective` (``cheap=True``, maximized) measuring a
subnet of a supernet (``proxy(net, arch)``) or a plain module (``proxy(model)``), so it serves
as a cheap objective of a search, or as a feature of the predictor strategy
(``strategy_options={"features": [synflow(shape)]}``). Every proxy works on a copy
(``net.export(arch)``, or a deep copy of a plain module): the user's model, its weights, its
gradients and its train/eval mode are never touched.

* :func:`synflow`: sum over parameters of ``|theta * dR/dtheta|``, where ``R`` is the sum of the
  outputs of the network with every weight replaced by its absolute value, on an all-ones
  input, in float64 (Tanaka et al., 2020).
* :func:`grad_norm`: the L2 norm of the gradient of the cross-entropy loss on one minibatch,
  over all parameters, in train mode (Abdelfattah et al., 2021).
* :func:`naswot`: ``log det K`` of the minibatch's ReLU activation patterns, ``K[i, j]`` = the
  number of ReLU units on which inputs ``i`` and ``j`` agree (Mellor et al., 2021); every
  ReLU applied in the forward pass counts (``nn.ReLU``, ``F.relu``, ``torch.relu``).
  ``1e-6 * units`` is added to K's diagonal so inputs with identical patterns give a finite
  score.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from nasviz.errors import ConfigError, ShapeError, check_int, check_shape
from nasviz.objectives import Objective

__all__ = ["grad_norm", "naswot", "synflow"]


def _copy(model: Any, arch: Any) -> nn.Module:
    """A standalone copy of subnet ``arch`` (``model`` copied when there is no arch)."""
    if arch is not None:
        if not (hasattr(model, "export") and hasattr(model, "subnet")):
            raise ConfigError(
                f"zero-cost proxies of an arch need a supernet (with export(arch)); got "
                f"{type(model).__name__}. A function search has no network to measure"
            )
        return model.export(arch)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"zero-cost proxies measure a torch nn.Module, got {type(model).__name__}"
        )
    return copy.deepcopy(model)


def _batch(data: Any, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``batch_size`` training examples of ``data``: a nasviz Dataset (its train
    split), a Split (``.X`` / ``.y``) or an ``(X, y)`` pair."""
    if hasattr(data, "train") and hasattr(data, "val"):
        data = data.train
    if hasattr(data, "X") and hasattr(data, "y"):
        X, y = data.X, data.y
    elif isinstance(data, tuple) and len(data) == 2:
        X, y = data
    else:
        raise ConfigError(
            f"proxy data must be a nasviz Dataset or Split or an (X, y) pair of tensors, got "
            f"{type(data).__name__}"
        )
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor) or len(X) != len(y):
        raise ConfigError("proxy data: X and y must be tensors of the same length")
    if len(X) < 2:
        raise ConfigError(f"proxy data needs at least 2 examples, got {len(X)}")
    return X[:batch_size], y[:batch_size]


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    try:
        out = model(x)
    except (RuntimeError, IndexError) as exc:
        raise ShapeError(
            f"zero-cost proxy: a forward pass on an input of shape {tuple(x.shape)} failed: {exc}"
        ) from exc
    return out.logits if hasattr(out, "logits") else out


def synflow(input_shape: tuple[int, ...]) -> Objective:
    """SynFlow score (maximize): see the module docstring. ``input_shape`` includes the batch
    (``(1, 1, 8, 8)``); it is checked here."""
    shape = check_shape("input_shape (batch included)", input_shape)
    if len(shape) < 2:
        raise ConfigError(
            f"input_shape includes the batch: (1, {', '.join(map(str, shape))}) for one example "
            f"of shape {shape}, got {shape}"
        )

    def fn(model: Any, arch: Any) -> float:
        net = _copy(model, arch).double().eval()
        with torch.no_grad():
            for p in net.parameters():
                p.abs_()
        params = [p for p in net.parameters() if p.requires_grad]
        out = _forward(net, torch.ones(shape, dtype=torch.float64))
        grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
        with torch.no_grad():
            return float(
                sum(
                    (p * g).abs().sum() for p, g in zip(params, grads, strict=True) if g is not None
                )
            )

    return Objective("synflow", "maximize", fn, cheap=True, needs_model=True)


def grad_norm(data: Any, *, batch_size: int = 64) -> Objective:
    """Gradient-norm score (maximize) on the first ``batch_size`` training examples of
    ``data``; see the module docstring."""
    batch_size = check_int("batch_size", batch_size, 2)
    X, y = _batch(data, batch_size)

    def fn(model: Any, arch: Any) -> float:
        net = _copy(model, arch).train()
        params = [p for p in net.parameters() if p.requires_grad]
        loss = F.cross_entropy(_forward(net, X), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))

    return Objective("grad_norm", "maximize", fn, cheap=True, needs_model=True)


class _ReluCodes(TorchFunctionMode):
    """Records which units every ReLU turned on, per input of the batch."""

    RELUS = frozenset({torch.relu, torch.relu_, F.relu, torch.Tensor.relu, torch.Tensor.relu_})

    def __init__(self):
        super().__init__()
        self.codes: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in self.RELUS:
            self.codes.append((out > 0).reshape(out.shape[0], -1))  # (B, units)
        return out


def naswot(data: Any, *, batch_size: int = 64) -> Objective:
    """NASWOT score (maximize) on the first ``batch_size`` training examples of ``data``; see
    the module docstring.

    Raises (when measured):
        ConfigError: the network applies no ReLU.
    """
    batch_size = check_int("batch_size", batch_size, 2)
    X, _ = _batch(data, batch_size)

    def fn(model: Any, arch: Any) -> float:
        net = _copy(model, arch).eval()
        recorder = _ReluCodes()
        with torch.no_grad(), recorder:
            _forward(net, X)
        if not recorder.codes:
            raise ConfigError("naswot needs a network with ReLU activations; this one has none")
        codes = torch.cat(recorder.codes, dim=1).double()  # (B, units)
        K = codes @ codes.T + (1 - codes) @ (1 - codes).T  # (B, B): agreeing units
        K = K.numpy() + np.eye(len(K)) * 1e-6 * codes.shape[1]
        return float(np.linalg.slogdet(K)[1])

    return Objective("naswot", "maximize", fn, cheap=True, needs_model=True)
