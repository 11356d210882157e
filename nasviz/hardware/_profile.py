"""Device profiles: a supernet's per-block latencies measured once on one machine, as JSON.

:meth:`HardwareProfile.measure` times every choice of every block of a supernet (its
:meth:`~nasviz.supernet.Supernet.block_space`) on the runtime and device asked for, and whole
subnets of a few random archs; it records the machine with the figures. The profile saves as
plain JSON (never pickle) and loads on any machine, so a search can target a device that is
not at hand: :func:`nasviz.hardware.latency_table` turns a profile into a cheap objective.

Measurements are interleaved: every round times each block choice and each sampled subnet once,
in a shuffled order, so slow drifts of a shared machine spread evenly over all of them; an
entry's latency is the median of all its timed forwards. By default each visit is also
normalized by a reference kernel timed with it (:mod:`nasviz.hardware._reference`), which puts
every figure at the session's typical speed of the machine; the profile keeps that reference's
time, so :meth:`HardwareProfile.rescaled` can later move the whole profile to the speed the
machine has then.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from nasviz.errors import CheckpointError, ConfigError, check_int, check_real, check_shape
from nasviz.hardware._machine import Machine
from nasviz.space import SearchSpace

__all__ = ["FORMAT", "BlockRecord", "HardwareProfile"]

FORMAT = "nasviz.hardware-profile/1"
#: archs enumerated per block to learn which choice each combination of its dims gives
MAX_CASES = 100_000


@dataclass(frozen=True)
class BlockRecord:
    """One block's measured choices and how an arch picks one.

    Attributes:
        name, dims: as in :class:`~nasviz.supernet.Block`.
        choices: the block's choices (plain dicts).
        ms, p10_ms, p90_ms: median and spread of each choice's latency (same order).
        cases: ``(values of dims, choice index)`` for every combination of the dims' values;
            index -1 means the block does not run.
    """

    name: str
    dims: tuple[str, ...]
    choices: tuple[dict[str, Any], ...]
    ms: tuple[float, ...]
    p10_ms: tuple[float, ...]
    p90_ms: tuple[float, ...]
    cases: tuple[tuple[tuple[Any, ...], int], ...]


def _jsonable(value: Any) -> Any:
    """Tuples as lists, recursively (what JSON gives back)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _sample_archs(net: Any, samples: int, seed: int) -> list[Any]:
    """The smallest and the largest subnet, then ``samples`` other distinct random ones (fewer
    when the space has fewer)."""
    rng = np.random.default_rng(seed)
    pool = dict.fromkeys([net.smallest(), net.largest()])
    for _ in range(100 * samples):
        if len(pool) >= 2 + samples:
            break
        pool.setdefault(net.space.sample(rng))
    return list(pool)


def _cases(net: Any, block: Any) -> tuple[tuple[tuple[Any, ...], int], ...]:
    """Which choice of ``block`` (index, -1: not run) each combination of its dims gives."""
    space = net.space
    values = [space.to_dict()[d] for d in block.dims]
    total = int(np.prod([len(v) for v in values])) if values else 1
    if total > MAX_CASES:
        raise ConfigError(
            f"block {block.name!r} depends on {len(block.dims)} dimensions with {total:,} "
            f"combinations; a latency table handles up to {MAX_CASES:,} per block"
        )
    base = space.largest()
    index = {c: i for i, c in enumerate(block.choices)}
    out = []
    for combo in itertools.product(*values):
        arch = space.validate(base.replace(**dict(zip(block.dims, combo, strict=True))))
        chosen = dict(net.block_choices(arch)).get(block.name)
        out.append((tuple(combo), -1 if chosen is None else index[chosen]))
    return tuple(out)


@dataclass(frozen=True)
class HardwareProfile:
    """Per-block latencies of one supernet on one machine, runtime, input shape and thread count.

    Build one with :meth:`measure`; :meth:`save` / :meth:`load` keep it as JSON;
    :meth:`table` predicts subnets' latencies from it.

    Attributes:
        machine: where it was measured.
        family, config, space: the supernet measured (its class, config and search space).
        input_shape: the net's input shape (batch included) the blocks were measured for.
        runtime, threads, repeats, warmup, rounds: how.
        blocks: one :class:`BlockRecord` per block, in forward order.
        fixed_ms: added to the blocks' sum: the median over the sampled subnets of (measured -
            sum of their blocks), i.e. what running whole models costs beyond their blocks
            (per-call overheads that timing each block separately counts once per block).
        samples: ``(arch, measured ms)`` of whole subnets timed with the blocks (they set
            ``fixed_ms`` and train the learned predictor).
        created: ISO timestamp.
        reference_ms: the session's median time of the reference kernel each figure was
            normalized by (None: measured without normalizing, or an older profile).
    """

    machine: Machine
    family: str
    config: dict[str, Any]
    space: dict[str, list[Any]]
    input_shape: tuple[int, ...]
    runtime: str
    threads: int
    repeats: int
    warmup: int
    rounds: int
    blocks: tuple[BlockRecord, ...]
    fixed_ms: float
    samples: tuple[tuple[dict[str, Any], float], ...]
    created: str
    reference_ms: float | None = None

    # ---- measuring -----------------------------------------------------------------------
    @classmethod
    def measure(
        cls,
        net: Any,
        input_shape: Sequence[int],
        *,
        runtime: str = "eager",
        device: str | torch.device | None = "cpu",
        threads: int = 1,
        repeats: int = 10,
        warmup: int = 3,
        rounds: int = 3,
        samples: int = 8,
        seed: int = 0,
        normalize: bool = True,
    ) -> HardwareProfile:
        """Measures every block choice of supernet ``net`` and ``samples`` random subnets.

        Args:
            net: a supernet that describes its blocks (ElasticMLP, ElasticCNN,
                ElasticTransformer; see :mod:`nasviz.supernet._blocks`).
            input_shape: the net's input shape, batch included.
            runtime: ``"eager"``, ``"compile"`` or ``"onnxruntime"``.
            device: where to measure (``"cpu"``, ``"cuda"``, ...).
            threads: intra-op threads (torch's setting is restored afterwards).
            repeats, warmup: timed and untimed forwards per entry and round.
            rounds: interleaved rounds (see the module's docstring).
            samples: random subnets timed whole (besides the smallest and the largest) to
                calibrate ``fixed_ms``; 0 times only the smallest and the largest.
            seed: of the random subnets.
            normalize: scale each visit's timings by the reference kernel timed with it (see
                the module's docstring); False keeps the raw timings.

        Raises:
            ConfigError: bad arguments, a runtime that is not installed, a supernet that does
                not describe its blocks.
            ShapeError: ``net`` does not take inputs of ``input_shape``.
        """
        from nasviz.hardware._interleave import measure_interleaved
        from nasviz.hardware._runtime import check_runtime, resolve_device

        shape = check_shape("input_shape (batch included)", input_shape)
        runtime = check_runtime(runtime)
        for name, value, low in (
            ("threads", threads, 1),
            ("repeats", repeats, 1),
            ("warmup", warmup, 0),
            ("rounds", rounds, 1),
            ("samples", samples, 0),
        ):
            check_int(name, value, low)
        if not all(hasattr(net, a) for a in ("space", "block_space", "export_block")):
            raise ConfigError(
                f"HardwareProfile.measure needs a supernet with a block view, got {type(net).__name__}"
            )
        where = resolve_device(device)
        block_space = net.block_space()
        for b in block_space:
            net.block_input_shape(b.name, b.choices[0], shape)  # ShapeError before any work
        archs = _sample_archs(net, samples, seed)
        entries: list[tuple[Any, Any, tuple[int, ...]]] = [
            ((b.name, c), net.export_block(b.name, c), net.block_input_shape(b.name, c, shape))
            for b in block_space
            for c in b.choices
        ]
        entries += [(arch, net.export(arch), shape) for arch in archs]
        measured = measure_interleaved(
            entries,
            runtime=runtime,
            device=where,
            threads=threads,
            repeats=repeats,
            warmup=warmup,
            rounds=rounds,
            seed=seed,
            normalize=bool(normalize),
        )
        timed = measured.times
        blocks = []
        for b in block_space:
            per_choice = [np.asarray(timed[(b.name, c)]) for c in b.choices]
            blocks.append(
                BlockRecord(
                    b.name,
                    tuple(b.dims),
                    tuple(dict(c) for c in b.choices),
                    tuple(float(np.median(t)) for t in per_choice),
                    tuple(float(np.percentile(t, 10)) for t in per_choice),
                    tuple(float(np.percentile(t, 90)) for t in per_choice),
                    _cases(net, b),
                )
            )
        profile = cls(
            machine=Machine.current(where),
            family=net.family,
            config=_jsonable(dataclasses.asdict(net.config)),
            space=_jsonable(net.space.to_dict()),
            input_shape=shape,
            runtime=runtime,
            threads=threads,
            repeats=repeats,
            warmup=warmup,
            rounds=rounds,
            blocks=tuple(blocks),
            fixed_ms=0.0,
            samples=(),
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            reference_ms=measured.reference_ms,
        )
        return profile.with_samples([(a, float(np.median(timed[a]))) for a in archs])

    def with_samples(self, samples: Sequence[tuple[Any, float]]) -> HardwareProfile:
        """This profile with other whole subnets' measurements, ``(arch, ms)`` pairs: its
        ``fixed_ms`` is recomputed from them (the median of measured minus the blocks' sum) and
        :class:`~nasviz.hardware.LatencyPredictor` fits on them. Add subnets measured later on
        the same machine and runtime (a search's front, timed for real) to sharpen the
        predictions, or keep some measurements out to check the predictions on them.

        Raises:
            ConfigError: no sample, a latency that is not a positive finite number of ms.
            SpaceError: an arch outside the profile's space.
        """
        space = self.search_space
        pairs = []
        for arch, ms in samples:
            if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 < ms < np.inf:
                raise ConfigError(
                    f"a sample's latency must be a positive finite number of ms, got {ms!r} for "
                    f"{dict(arch)}"
                )
            pairs.append((dict(space.validate(arch)), float(ms)))
        if not pairs:
            raise ConfigError("with_samples needs at least one (arch, ms) measurement")
        sums = self.table().predict_many([a for a, _ in pairs]) - self.fixed_ms
        residual = float(np.median([m for _, m in pairs] - sums))
        return dataclasses.replace(self, fixed_ms=residual, samples=tuple(pairs))

    def rescaled(self, reference_ms: float | None = None) -> HardwareProfile:
        """This profile moved to the machine's speed now: every figure (blocks, spreads, fixed
        part, samples) times (the reference kernel's time now / its time when the profile was
        measured). A shared machine's speed drifts by 10-25% between sessions; a table
        rescaled before a search or a check predicts for the machine as it is.

        Args:
            reference_ms: the reference kernel's time to scale to; None times it now (on the
                profile's device, with its thread count).

        Raises:
            ConfigError: the profile was measured without normalizing (no reference), or on
                other hardware (a kernel's speed does not carry a profile across machines).
        """
        from nasviz.hardware._reference import reference_kernel
        from nasviz.hardware._runtime import resolve_device
        from nasviz.objectives import _clock

        if self.reference_ms is None:
            raise ConfigError(
                "this profile has no reference time (measured with normalize=False, or by an "
                "older nasviz); measure it again to rescale it"
            )
        if reference_ms is None:
            device = resolve_device(self.machine.device)
            here = Machine.current(device)
            if not here.same_hardware(self.machine):
                raise ConfigError(
                    f"the profile was measured on {self.machine}, this is {here}: rescaling "
                    "moves a profile to its own machine's current speed; measure one here"
                )
            before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                time = reference_kernel(device, _clock)
                reference_ms = float(np.median([time() for _ in range(5)]))
            finally:
                torch.set_num_threads(before)
        now = check_real("reference_ms", reference_ms)
        if now <= 0:
            raise ConfigError(f"reference_ms must be a positive time in ms, got {reference_ms!r}")
        factor = now / self.reference_ms
        blocks = tuple(
            dataclasses.replace(
                b,
                ms=tuple(m * factor for m in b.ms),
                p10_ms=tuple(m * factor for m in b.p10_ms),
                p90_ms=tuple(m * factor for m in b.p90_ms),
            )
            for b in self.blocks
        )
        return dataclasses.replace(
            self,
            blocks=blocks,
            fixed_ms=self.fixed_ms * factor,
            samples=tuple((a, m * factor) for a, m in self.samples),
            reference_ms=now,
        )

    # ---- using ---------------------------------------------------------------------------
    def table(self) -> Any:
        """The :class:`~nasviz.hardware.LatencyTable` predicting subnets' latencies from this
        profile (ConfigError when a block choice has no figure)."""
        from nasviz.hardware._table import LatencyTable

        return LatencyTable(self)

    def check(self, net: Any) -> None:
        """Raises ConfigError unless ``net`` is the supernet this profile was measured for:
        same family, same config and same search space."""
        family = getattr(net, "family", type(net).__name__)
        if family != self.family:
            raise ConfigError(
                f"this profile was measured for a {self.family}, not for a {family}; measure "
                "one for this supernet with HardwareProfile.measure(net, input_shape)"
            )
        config = _jsonable(dataclasses.asdict(net.config))
        measured = net.saved_config(self.config) if hasattr(net, "saved_config") else self.config
        if config != measured:
            differ = sorted(k for k in config if config.get(k) != measured.get(k))
            raise ConfigError(
                f"this profile was measured for a {self.family} with another config (differs "
                f"in {differ}: profile {[measured.get(k) for k in differ]}, net "
                f"{[config.get(k) for k in differ]}); measure one for this supernet"
            )
        space = _jsonable(net.space.to_dict())
        if space != self.space:
            raise ConfigError(
                f"this profile was measured for another search space ({self.space}); the net's "
                f"space is {space}"
            )

    def frame(self) -> pd.DataFrame:
        """One row per block choice: ``block``, ``choice`` (dict), ``ms``, ``p10_ms``,
        ``p90_ms``."""
        rows = [
            {"block": b.name, "choice": c, "ms": m, "p10_ms": lo, "p90_ms": hi}
            for b in self.blocks
            for c, m, lo, hi in zip(b.choices, b.ms, b.p10_ms, b.p90_ms, strict=True)
        ]
        return pd.DataFrame(rows, columns=["block", "choice", "ms", "p10_ms", "p90_ms"])

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace(self.space)

    def __repr__(self) -> str:
        entries = sum(len(b.choices) for b in self.blocks)
        return (
            f"HardwareProfile({self.family}, input {self.input_shape}, {self.runtime}, "
            f"{self.threads} thread(s), {entries} block choices, on {self.machine})"
        )

    # ---- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (see :meth:`from_dict`)."""
        data = dataclasses.asdict(self)
        data["machine"] = self.machine.to_dict()
        data["samples"] = [{"arch": a, "ms": m} for a, m in self.samples]
        data["blocks"] = [
            {**dataclasses.asdict(b), "cases": [[list(v), i] for v, i in b.cases]}
            for b in self.blocks
        ]
        return _jsonable({"format": FORMAT, **data})

    @classmethod
    def from_dict(cls, data: Any) -> HardwareProfile:
        """Inverse of :meth:`to_dict`; CheckpointError naming what is malformed."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CheckpointError(f"not a nasviz hardware profile ({FORMAT}); found {found!r}")
        fields = set(cls.__dataclass_fields__)
        optional = {"reference_ms"}  # absent from profiles older nasviz versions wrote
        if not fields - optional <= set(data) - {"format"} <= fields:
            raise CheckpointError(
                f"a hardware profile needs the keys {sorted(fields - optional)}; missing "
                f"{sorted(fields - optional - set(data))}, unknown {sorted(set(data) - fields - {'format'})}"
            )
        try:
            blocks = tuple(
                BlockRecord(
                    str(b["name"]),
                    tuple(b["dims"]),
                    tuple(dict(c) for c in b["choices"]),
                    tuple(map(float, b["ms"])),
                    tuple(map(float, b["p10_ms"])),
                    tuple(map(float, b["p90_ms"])),
                    tuple((tuple(v), int(i)) for v, i in b["cases"]),
                )
                for b in data["blocks"]
            )
            return cls(
                machine=Machine.from_dict(data["machine"]),
                family=str(data["family"]),
                config=dict(data["config"]),
                space={k: list(v) for k, v in data["space"].items()},
                input_shape=tuple(int(d) for d in data["input_shape"]),
                runtime=str(data["runtime"]),
                threads=int(data["threads"]),
                repeats=int(data["repeats"]),
                warmup=int(data["warmup"]),
                rounds=int(data["rounds"]),
                blocks=blocks,
                fixed_ms=float(data["fixed_ms"]),
                samples=tuple((dict(s["arch"]), float(s["ms"])) for s in data["samples"]),
                created=str(data["created"]),
                reference_ms=None
                if data.get("reference_ms") is None
                else float(data["reference_ms"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(
                f"malformed hardware profile: {type(exc).__name__}: {exc}"
            ) from exc

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the profile as JSON (whole or not at all); returns the path."""
        target = Path(path)
        if not target.parent.is_dir():
            raise ConfigError(
                f"path {str(path)!r}: the folder {str(target.parent)!r} does not exist"
            )
        fd, tmp = tempfile.mkstemp(suffix=".json", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=1)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> HardwareProfile:
        """Reads a profile written by :meth:`save` (plain JSON; nothing is executed).

        Raises:
            CheckpointError: no such file, not JSON, or not a hardware profile.
        """
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise CheckpointError(
                f"cannot read a hardware profile at {str(path)!r}: {exc}"
            ) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{str(path)!r} is not JSON: {exc}") from exc
        return cls.from_dict(data)
