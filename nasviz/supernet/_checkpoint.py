"""Saving and loading supernets and exported subnets: JSON config + tensors, nothing pickled.

A checkpoint is one ``torch.save`` file of a dict holding only strings and tensors: the format
tag, the family, the config and arch as JSON, and the state dict. It is read back with
``torch.load(..., weights_only=True)``, so loading never runs code from the file. An exported
subnet is rebuilt by exporting the same arch from a fresh supernet of the saved config, then
loading the saved weights into it (strictly).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasviz._torchfile import read_torch_file, unreadable_reason
from nasviz.errors import CheckpointError, ConfigError, SpaceError
from nasviz.space import Arch
from nasviz.supernet._base import FAMILIES, Supernet
from nasviz.supernet._cnn import ElasticCNN  # noqa: F401 - the built-in families register
from nasviz.supernet._mlp import ElasticMLP  # noqa: F401
from nasviz.supernet._transformer import ElasticTransformer  # noqa: F401

__all__ = [
    "FAMILIES",
    "load_subnet",
    "load_supernet",
    "load_weights",
    "restore_blob",
    "save_subnet",
    "save_supernet",
    "supernet_blob",
]


SUPERNET_FORMAT = "nasviz.supernet/1"
SUBNET_FORMAT = "nasviz.subnet/1"


def _config_json(config: Any) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def _config_dict(config: Any) -> dict[str, Any]:
    return json.loads(_config_json(config))


def _read(path: str | Path, expected_format: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        blob = read_torch_file(path)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a nasviz checkpoint: {unreadable_reason(exc)} (nasviz reads "
            "checkpoints with torch.load(weights_only=True): tensors and plain containers only)"
        ) from exc
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if fmt != expected_format:
        what = {SUPERNET_FORMAT: "a supernet", SUBNET_FORMAT: "an exported subnet"}.get(
            fmt, f"format {fmt!r}"
        )
        raise CheckpointError(
            f"{path} holds {what}; expected a checkpoint of format {expected_format!r}"
        )
    return blob


def _family(blob: dict[str, Any], path: str | Path, family: str | None) -> type[Supernet]:
    name = blob.get("family")
    if family is not None and name != family:
        raise CheckpointError(f"{path} holds an {name} supernet checkpoint; expected an {family}")
    if name not in FAMILIES:
        raise CheckpointError(
            f"{path}: unknown supernet family {name!r}; known: {sorted(FAMILIES)}"
        )
    return FAMILIES[name]


def _build(cls: type[Supernet], config_json: str, path: str | Path) -> Supernet:
    try:
        return cls.from_config(cls.config_class(**cls.saved_config(json.loads(config_json))))
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: its {cls.__name__} config cannot be built: {exc}") from exc


def supernet_blob(net: Supernet) -> dict[str, Any]:
    """The checkpoint dict of a supernet (strings and tensors only)."""
    blob = {
        "format": SUPERNET_FORMAT,
        "family": net.family,
        "config": _config_json(net.config),
        "space": net.space.to_json(),
        "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
    }
    if net.calibration_inputs is not None:
        blob["calibration_inputs"] = net.calibration_inputs.detach().cpu().clone()
    return blob


def save_supernet(net: Supernet, path: str | Path) -> Path:
    """Writes a supernet's family, config, weights and calibration inputs to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(supernet_blob(net), path)
    return path


def load_supernet(path: str | Path, family: str | None = None) -> Supernet:
    """A supernet rebuilt from a checkpoint (of ``family`` when given)."""
    blob = _read(path, SUPERNET_FORMAT)
    net = _build(_family(blob, path, family), blob["config"], path)
    return _load_state(net, blob, path)


def load_weights(net: Supernet, path: str | Path) -> Supernet:
    """Loads a checkpoint into ``net``; family and config must match, else the error names the
    differing fields."""
    return restore_blob(net, _read(path, SUPERNET_FORMAT), path)


def restore_blob(net: Supernet, blob: dict[str, Any], path: str | Path) -> Supernet:
    """Loads a checkpoint dict into ``net`` after checking its family and config."""
    if not isinstance(blob, dict) or blob.get("format") != SUPERNET_FORMAT:
        raise CheckpointError(f"{path} does not hold a supernet of format {SUPERNET_FORMAT!r}")
    _family(blob, path, net.family)
    saved, mine = net.saved_config(json.loads(blob["config"])), _config_dict(net.config)
    diffs = [
        f"{k}={saved.get(k)!r} in the checkpoint but {mine.get(k)!r} in this net"
        for k in sorted(set(saved) | set(mine))
        if saved.get(k) != mine.get(k)
    ]
    if diffs:
        raise CheckpointError(f"{path}: config mismatch: " + "; ".join(diffs))
    return _load_state(net, blob, path)


def _load_state(net: Supernet, blob: dict[str, Any], path: str | Path) -> Supernet:
    try:
        net.load_state_dict(blob["state"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the {net.family} of its config: {exc}"
        ) from exc
    net.calibration_inputs = blob.get("calibration_inputs")
    net.clear_calibration()
    return net.eval()


def save_subnet(net: Supernet, arch: Any, path: str | Path) -> Path:
    """Exports subnet ``arch`` and writes it with what rebuilds it (family, config, arch)."""
    static = net.export(arch)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": SUBNET_FORMAT,
            "family": net.family,
            "config": _config_json(net.config),
            "arch": static.arch.to_json(),
            "state": {k: v.detach().cpu().clone() for k, v in static.state_dict().items()},
        },
        path,
    )
    return path


def load_subnet(path: str | Path) -> nn.Module:
    """An exported subnet (plain torch module, eval mode) read back from :func:`save_subnet`."""
    blob = _read(path, SUBNET_FORMAT)
    net = _build(_family(blob, path, None), blob["config"], path)
    try:
        arch = net.space.validate(Arch.from_json(blob["arch"]))
    except SpaceError as exc:
        raise CheckpointError(
            f"{path}: its arch does not belong to its supernet's space: {exc}"
        ) from exc
    static = net.export(arch)
    try:
        static.load_state_dict(blob["state"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit subnet {arch}: {exc}") from exc
    return static.eval()
