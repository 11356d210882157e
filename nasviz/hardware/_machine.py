"""What machine a measurement was taken on: CPU, cores, library versions, device."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from nasviz.errors import CheckpointError

__all__ = ["Machine"]


def _cpuinfo() -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as one dict per logical CPU (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    cpus = []
    for chunk in text.strip().split("\n\n"):
        entry = {}
        for line in chunk.splitlines():
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
        cpus.append(entry)
    return cpus


def _cpu_model(cpus: list[dict[str, str]]) -> str:
    for entry in cpus:
        if entry.get("model name"):
            return entry["model name"]
    return platform.processor() or platform.machine() or "unknown"


def _physical_cores(cpus: list[dict[str, str]]) -> int:
    cores = {(c.get("physical id"), c.get("core id")) for c in cpus if "core id" in c}
    return len(cores) or os.cpu_count() or 1


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Machine:
    """The machine (and software) a profile was measured on.

    Attributes:
        cpu: CPU model name.
        cores: physical CPU cores; threads: logical CPUs this process may use.
        system: operating system and architecture; python, torch, onnxruntime: versions
            (onnxruntime None when not installed).
        device: the torch device measured on (``"cpu"``, ``"cuda:0"``); device_name: its name
            (the CPU model, or the GPU's name).
    """

    cpu: str
    cores: int
    threads: int
    system: str
    python: str
    torch: str
    onnxruntime: str | None
    device: str
    device_name: str

    @classmethod
    def current(cls, device: torch.device | str = "cpu") -> Machine:
        """This machine, measuring on ``device``."""
        device = torch.device(device)
        cpus = _cpuinfo()
        cpu = _cpu_model(cpus)
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            threads = os.cpu_count() or 1
        name = cpu
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
        return cls(
            cpu=cpu,
            cores=_physical_cores(cpus),
            threads=threads,
            system=f"{platform.system()} {platform.release()} {platform.machine()}",
            python=sys.version.split()[0],
            torch=torch.__version__,
            onnxruntime=_version("onnxruntime") or _version("onnxruntime-gpu"),
            device=str(device),
            device_name=name,
        )

    def same_hardware(self, other: Machine) -> bool:
        """True when ``other`` has the same CPU, core count and device (versions may differ)."""
        return (self.cpu, self.cores, self.device_name) == (
            other.cpu,
            other.cores,
            other.device_name,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Machine:
        """Inverse of :meth:`to_dict`; CheckpointError for a malformed record."""
        names = set(cls.__dataclass_fields__)
        if not isinstance(data, dict) or set(data) != names:
            raise CheckpointError(
                f"a profile's machine record needs exactly the keys {sorted(names)}, got "
                f"{sorted(data) if isinstance(data, dict) else type(data).__name__}"
            )
        return cls(**data)

    def __str__(self) -> str:
        text = f"{self.cpu}, {self.cores} cores / {self.threads} threads, torch {self.torch}"
        if self.device == "cpu" and self.device_name in (self.cpu, "", None):
            return text  # (the CPU named once)
        where = self.device_name if self.device == "cpu" else f"{self.device} ({self.device_name})"
        return f"{text}, on {where}"
