"""Masks: a soft, inspectable mapping parameter name -> bool tensor, tied to one model.

``True`` keeps a weight, ``False`` prunes it. A :class:`Masks` changes nothing until it is
applied: :meth:`Masks.apply` registers a :mod:`torch.nn.utils.parametrize` parametrization
(``weight = original * mask``) on every masked parameter, and :func:`remove` takes them off
again and restores the original weights exactly. :func:`nasviz.prune.shrink` turns structured
masks into a smaller dense model.

Threads: a Masks is immutable after construction (its tensors are private copies), so it may be
read from any thread. ``apply`` / ``remove`` mutate the model and belong to the thread that owns
the model.
"""

from __future__ import annotations

import copy
import json
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize

from nasviz._compat import REMOVED_IN
from nasviz.errors import CheckpointError, MaskError

__all__ = ["Masks", "applied", "check_sparsity", "copy_model", "prunable", "remove"]

#: Module types whose ``weight`` unstructured methods prune by default.
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)
_FORMAT = "nasviz-masks/1"


class _Mask(nn.Module):
    """The parametrization ``weight = original * mask`` (mask kept as a buffer)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.clone())

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original * self.mask.to(original.dtype)


def check_sparsity(sparsity: float, what: str = "sparsity") -> float:
    """``sparsity`` as a float in [0, 1), or a MaskError saying what is allowed."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float | np.floating):
        raise MaskError(f"{what} must be a number in [0, 1), got {sparsity!r}")
    value = float(sparsity)
    if not 0.0 <= value < 1.0:
        raise MaskError(f"{what} must be in [0, 1) (1 would remove every weight), got {value}")
    return value


def copy_model(model: nn.Module, plain: bool = False) -> nn.Module:
    """A deep copy of ``model`` that shares nothing with it, parametrized modules included.

    ``copy.deepcopy`` gives a parametrized module's copy the *same* injected class, so adding
    or removing a parametrization on the copy would change the original's properties; each
    parametrized module of the copy gets its own class here.

    Args:
        plain: take nasviz masks off the copy, leaving masked weights as zeros.
    """
    new = copy.deepcopy(model)
    for module in new.modules():
        if parametrize.is_parametrized(module):
            cls = type(module)
            own = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
            module.__class__ = type(cls.__name__, cls.__bases__, own)
    return remove(new, permanent=True) if plain else new


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_name, _, attr = name.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), attr


def named_weights(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, torch.Tensor]]:
    """Every parameter under its plain name (``"0.weight"``, also when parametrized), with its
    module, attribute name and current effective value (masked when a mask is applied)."""
    if not isinstance(model, nn.Module):
        raise MaskError(f"model must be a torch nn.Module, got {type(model).__name__}")
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue
        names = [n for n, _ in module.named_parameters(recurse=False)]
        if parametrize.is_parametrized(module):
            names += list(module.parametrizations.keys())
        for attr in names:
            tensor = getattr(module, attr)
            key = (
                id(module.parametrizations[attr].original)
                if parametrize.is_parametrized(module, attr)
                else id(tensor)
            )
            if key in seen:  # a shared (tied) parameter is listed once
                continue
            seen.add(key)
            yield (f"{module_name}.{attr}" if module_name else attr), module, attr, tensor


def prunable(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights unstructured methods prune: ``weight`` of every Linear and Conv layer.

    Raises:
        MaskError: the model has none.
    """
    found = {
        name: t.detach()
        for name, mod, attr, t in named_weights(model)
        if attr == "weight" and isinstance(mod, PRUNABLE_TYPES)
    }
    if not found:
        raise MaskError(
            f"{type(model).__name__} has no prunable parameters; nasviz prunes the weight of "
            "nn.Linear and nn.Conv1d/2d/3d layers"
        )
    return found


class Masks(Mapping[str, torch.Tensor]):
    """Pruning masks: parameter name -> bool tensor of the parameter's shape (True = kept).

    Args:
        masks: name -> mask (anything ``torch.as_tensor`` accepts; converted to bool copies).
        model: when given, names and shapes are checked against it now.
        meta: JSON-able facts about how the masks were made (method, sparsity, input_shape).

    Example:
        >>> m = prune.magnitude(model, 0.5)
        >>> m.stats()            # one row per layer
        >>> m.apply(model)       # soft until here; remove(model) undoes it
    """

    def __init__(
        self,
        masks: Mapping[str, Any],
        model: nn.Module | None = None,
        meta: Mapping[str, Any] | None = None,
    ):
        if not isinstance(masks, Mapping) or not masks:
            raise MaskError("Masks needs a non-empty mapping of parameter name -> bool tensor")
        self._masks = {
            str(k): torch.as_tensor(v).detach().to("cpu", torch.bool).clone()
            for k, v in masks.items()
        }
        self.meta: dict[str, Any] = dict(meta or {})
        self._kept: dict[str, int] = {}  # kept count per tensor, filled on first use
        if model is not None:
            self.check(model)

    # ---- mapping -----------------------------------------------------------------------------
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __repr__(self) -> str:
        how = self.meta.get("method", "custom")
        return f"Masks({how}, {len(self)} tensors, {self.total:,} weights, sparsity={self.sparsity:.3f})"

    # ---- numbers -----------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Number of masked weights."""
        return sum(m.numel() for m in self._masks.values())

    def kept_in(self, name: str) -> int:
        """Number of weights kept (True) in tensor ``name`` (counted once, then cached)."""
        if name not in self._kept:
            self._kept[name] = int(np.count_nonzero(self._masks[name].numpy()))
        return self._kept[name]

    @property
    def kept(self) -> int:
        """Number of weights kept (True)."""
        return sum(self.kept_in(n) for n in self._masks)

    @property
    def sparsity(self) -> float:
        """Fraction of masked weights that are pruned."""
        return 1.0 - self.kept / self.total

    def stats(self) -> pd.DataFrame:
        """One row per tensor: name, shape, params, kept, removed, sparsity."""
        rows = [
            {
                "name": n,
                "shape": tuple(m.shape),
                "params": m.numel(),
                "kept": self.kept_in(n),
                "removed": m.numel() - self.kept_in(n),
                "sparsity": 1.0 - self.kept_in(n) / max(m.numel(), 1),
            }
            for n, m in self._masks.items()
        ]
        return pd.DataFrame(
            rows, columns=["name", "shape", "params", "kept", "removed", "sparsity"]
        )

    # ---- tied to a model ---------------------------------------------------------------------
    def check(self, model: nn.Module) -> None:
        """Raises MaskError unless every mask names a parameter of ``model`` of the same shape."""
        shapes = {name: tuple(t.shape) for name, _, _, t in named_weights(model)}
        for name, mask in self._masks.items():
            if name not in shapes:
                near = ", ".join(list(shapes)[:6]) + (", ..." if len(shapes) > 6 else "")
                raise MaskError(
                    f"mask {name!r} names no parameter of {type(model).__name__}; these masks were "
                    f"made for another model (its parameters: {near})"
                )
            if shapes[name] != tuple(mask.shape):
                raise MaskError(
                    f"mask {name!r} has shape {tuple(mask.shape)} but the model's parameter has shape "
                    f"{shapes[name]}; these masks were made for another model"
                )

    def apply(self, model: nn.Module) -> nn.Module:
        """Masks ``model``'s parameters in place through torch parametrizations; returns it.

        Re-applying replaces earlier nasviz masks. Reversible with :func:`remove`; nothing is
        changed when the masks do not fit the model.
        """
        self.check(model)
        for name, mask in self._masks.items():
            module, attr = _owner(model, name)
            device = (
                module.parametrizations[attr].original
                if parametrize.is_parametrized(module, attr)
                else getattr(module, attr)
            ).device
            existing = _nasviz_mask(module, attr)
            if existing is not None:
                existing.mask.copy_(mask.to(device))
            else:
                parametrize.register_parametrization(
                    module, attr, _Mask(mask.to(device)), unsafe=True
                )
        return model

    def remove(self, model: nn.Module, permanent: bool = False) -> nn.Module:
        """Takes these masks off ``model`` (other nasviz masks stay); see :func:`remove`."""
        self.check(model)
        return remove(model, permanent=permanent, names=list(self._masks))

    def shrink(self, model: nn.Module, example_input: Any = None) -> nn.Module:
        """A smaller dense copy of ``model`` without the pruned channels; see :func:`nasviz.prune.shrink`."""
        from nasviz.prune._shrink import shrink

        return shrink(model, self, example_input=example_input)

    # ---- comparing ---------------------------------------------------------------------------
    def _pair(self, other: Masks, op: str) -> None:
        if not isinstance(other, Masks):
            raise MaskError(f"{op} needs two Masks, got {type(other).__name__}")
        if set(self) != set(other):
            diff = sorted(set(self) ^ set(other))
            raise MaskError(f"{op}: the masks cover different parameters (only in one: {diff[:6]})")
        for name in self:
            if self[name].shape != other[name].shape:
                raise MaskError(
                    f"{op}: mask {name!r} has shape {tuple(self[name].shape)} in one and "
                    f"{tuple(other[name].shape)} in the other"
                )

    def __and__(self, other: Masks) -> Masks:
        """Kept where both keep (prunes the union of both prunings)."""
        self._pair(other, "a & b")
        return Masks({n: self[n] & other[n] for n in self}, meta={"method": "and"})

    def __or__(self, other: Masks) -> Masks:
        """Kept where either keeps (prunes only what both prune)."""
        self._pair(other, "a | b")
        return Masks({n: self[n] | other[n] for n in self}, meta={"method": "or"})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Masks) or set(self) != set(other):
            return False
        return all(self[n].shape == other[n].shape and torch.equal(self[n], other[n]) for n in self)

    __hash__ = None  # type: ignore[assignment]

    def overlap(self, other: Masks, per_layer: bool = False) -> float:
        """How much two prunings agree: |pruned in both| / |pruned in either| (1.0 when neither
        prunes anything). Per tensor: :meth:`overlap_per_layer` (``per_layer=True`` is its
        deprecated spelling)."""
        if per_layer:
            warnings.warn(
                f"Masks.overlap(other, per_layer=True) is now overlap_per_layer(other); "
                f"per_layer= stops working in nasviz {REMOVED_IN}",
                FutureWarning,
                stacklevel=2,
            )
            return self.overlap_per_layer(other)  # type: ignore[return-value]
        df = self.overlap_per_layer(other)
        union = int(df[["both", "only_a", "only_b"]].to_numpy().sum())
        return 1.0 if union == 0 else int(df["both"].sum()) / union

    def overlap_per_layer(self, other: Masks) -> pd.DataFrame:
        """One row per tensor: ``name``, the weights pruned by ``both``, by this one alone
        (``only_a``), by ``other`` alone (``only_b``), and their ``overlap``."""
        self._pair(other, "overlap")
        rows = []
        for n in self:
            pa, pb = ~self[n], ~other[n]
            rows.append(
                {
                    "name": n,
                    "both": int((pa & pb).sum()),
                    "only_a": int((pa & ~pb).sum()),
                    "only_b": int((~pa & pb).sum()),
                }
            )
        df = pd.DataFrame(rows)
        df["overlap"] = (df["both"] / (df["both"] + df["only_a"] + df["only_b"])).fillna(1.0)
        return df

    # ---- files: bit-packed npz, no pickle ----------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes a compressed ``.npz`` of bit-packed masks plus a JSON header (no pickle)."""
        path = Path(path)
        header = {
            "format": _FORMAT,
            "names": list(self._masks),
            "shapes": [list(m.shape) for m in self._masks.values()],
            "meta": self.meta,
        }
        arrays = {
            f"m{i}": np.packbits(m.numpy().ravel()) for i, m in enumerate(self._masks.values())
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, model: nn.Module | None = None) -> Masks:
        """Reads :meth:`save`'s file (never unpickles); checks against ``model`` when given."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode())
                if header.get("format") != _FORMAT:
                    raise CheckpointError(
                        f"{path} is not a nasviz masks file (format {header.get('format')!r})"
                    )
                masks = {}
                for i, (name, shape) in enumerate(
                    zip(header["names"], header["shapes"], strict=True)
                ):
                    n = int(np.prod(shape, dtype=np.int64))
                    bits = np.unpackbits(data[f"m{i}"], count=n).astype(bool)
                    masks[name] = torch.from_numpy(bits.reshape(shape))
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"cannot read masks from {path}: {_unreadable(exc)}") from exc
        return cls(masks, model=model, meta=header.get("meta"))


def _unreadable(exc: BaseException) -> str:
    """Why a masks file could not be read, in words (never numpy's advice to unpickle it)."""
    if isinstance(exc, zipfile.BadZipFile | EOFError | zlib.error):
        return "it is truncated or corrupted (not a complete .npz archive)"
    if isinstance(exc, KeyError):
        return f"it is not a nasviz masks file (no {exc} array)"
    if "pickle" in str(exc):
        return "it holds pickled Python objects, which nasviz never loads"
    return str(exc)


def _nasviz_mask(module: nn.Module, attr: str) -> _Mask | None:
    if not parametrize.is_parametrized(module, attr):
        return None
    for p in module.parametrizations[attr]:
        if isinstance(p, _Mask):
            return p
    return None


def _masked_attrs(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """(plain parameter name, module, attribute) of every nasviz-masked parameter."""
    for module_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for attr in list(module.parametrizations.keys()):
            if _nasviz_mask(module, attr) is not None:
                yield (f"{module_name}.{attr}" if module_name else attr), module, attr


def applied(model: nn.Module) -> Masks | None:
    """The nasviz masks currently applied to ``model`` (None when there are none)."""
    found = {name: _nasviz_mask(m, attr).mask for name, m, attr in _masked_attrs(model)}
    return Masks(found) if found else None


def remove(
    model: nn.Module, permanent: bool = False, names: Iterable[str] | None = None
) -> nn.Module:
    """Takes nasviz masks off ``model``; returns it.

    Everything is checked before anything changes: when one masked parameter also carries
    another parametrization, MaskError is raised and no mask has been taken off.

    Args:
        permanent: False restores the original (unmasked) weights; True keeps the masked
            weights (pruned entries become plain zeros).
        names: only these parameters (plain names such as ``"0.weight"``); default every
            masked parameter.
    """
    if not isinstance(model, nn.Module):
        raise MaskError(f"model must be a torch nn.Module, got {type(model).__name__}")
    chosen = None if names is None else set(names)
    targets = [t for t in _masked_attrs(model) if chosen is None or t[0] in chosen]
    mixed = [name for name, m, attr in targets if len(m.parametrizations[attr]) != 1]
    if mixed:
        raise MaskError(
            f"{mixed} carry other parametrizations besides nasviz's mask; remove those first "
            "(nothing was changed)"
        )
    for _, module, attr in targets:
        parametrize.remove_parametrizations(module, attr, leave_parametrized=permanent)
    return model
