"""The supernet protocol: a space, a per-thread active subnet, exact export, checkpoints.

Which subnet a supernet computes is *not* module state. :meth:`Supernet.subnet` puts the arch's
plan into a :class:`contextvars.ContextVar` keyed by the supernet, so each thread (each
``concurrent.futures`` worker, each asyncio task) sees only the subnet it activated itself.
Outside any ``subnet(...)`` block a supernet computes its largest subnet.

Threads:
    * ``forward`` (eval mode), ``subnet``, ``export``, ``count_params`` and ``recalibrate`` may
      be called from many threads at once.
    * Training (train-mode forward, optimizer steps), ``reorder_channels``, ``load_weights`` and
      changing ``calibration_inputs`` happen in one thread while nothing else uses the net.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nasviz.errors import ConfigError, ShapeError
from nasviz.space import Arch, SearchSpace

__all__ = ["ForwardState", "Supernet"]

#: id(supernet) -> ForwardState of the subnet active in the current context (thread or task).
_ACTIVE: ContextVar[Mapping[int, ForwardState]] = ContextVar(
    "nasviz_active_subnets", default=MappingProxyType({})
)

BNStats = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ForwardState:
    """What a forward pass needs besides its input.

    Attributes:
        plan: the family's resolved, immutable description of the active arch.
        collect: during a BN re-calibration pass, key -> accumulators the pass fills (owned by
            that pass alone); None otherwise.
    """

    plan: Any
    collect: dict[str, list] | None = None


class _StatsCache:
    """arch -> re-calibrated BN statistics; a small thread-safe LRU (copies come back empty)."""

    def __init__(self, capacity: int = 512):
        self.capacity = capacity
        self._data: OrderedDict[Arch, BNStats] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, arch: Arch) -> BNStats | None:
        with self._lock:
            stats = self._data.get(arch)
            if stats is not None:
                self._data.move_to_end(arch)
            return stats

    def put(self, arch: Arch, stats: BNStats) -> None:
        with self._lock:
            self._data[arch] = MappingProxyType(dict(stats))
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __deepcopy__(self, memo: dict) -> _StatsCache:
        return _StatsCache(self.capacity)

    def __getstate__(self) -> dict:
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["capacity"])


class Supernet(nn.Module, ABC):
    """Base class of weight-sharing supernets.

    Subclasses set ``family`` (their registry name), ``config_class`` (a frozen dataclass),
    ``shrink_order`` (dimension groups in the order progressive shrinking opens them), build
    their modules and ``self.space`` in ``__init__``, then call :meth:`_finish_init`; they
    implement :meth:`_make_plan`, :meth:`forward`, :meth:`_export`, :meth:`count_params` and
    :meth:`reorder_channels`.

    Attributes:
        config: the frozen dataclass the net was built from (checked when loading weights).
        space: the :class:`~nasviz.SearchSpace` of its subnets.
        calibration_inputs: training inputs used to re-calibrate BN statistics of a subnet on
            first use in eval mode (set by ``train_supernet``); None disables it.
    """

    family: ClassVar[str] = "Supernet"
    config_class: ClassVar[type]
    shrink_order: ClassVar[tuple[str, ...]] = ()
    default_epochs: ClassVar[int] = 20  # train_supernet's default recipe for this family

    def __init__(self, config: Any):
        super().__init__()
        if not dataclasses.is_dataclass(config) or not config.__dataclass_params__.frozen:
            raise ConfigError(
                f"a supernet config must be a frozen dataclass, got {type(config).__name__}"
            )
        self.config = config
        self.space: SearchSpace
        self.calibration_inputs: torch.Tensor | None = None
        self._bn_stats = _StatsCache()
        self._plans: OrderedDict[Arch, Any] = OrderedDict()
        self._plans_lock = threading.Lock()

    def _finish_init(self) -> None:
        """Names the BN layers (their statistics are stored by name) and plans the largest."""
        from nasviz.supernet._ops import ElasticBatchNorm2d

        for name, module in self.named_modules():
            if isinstance(module, ElasticBatchNorm2d):
                module.key = name
        self._has_bn = any(isinstance(m, ElasticBatchNorm2d) for m in self.modules())
        self._largest = ForwardState(self._plan(self.space.largest()))

    @classmethod
    def from_config(cls, config: Any) -> Supernet:
        """Builds a supernet from its config dataclass."""
        if not isinstance(config, cls.config_class):
            raise ConfigError(
                f"{cls.__name__} needs a {cls.config_class.__name__}, got {type(config).__name__}"
            )
        return cls(**dataclasses.asdict(config))

    # ---- archs ---------------------------------------------------------------------------
    def largest(self) -> Arch:
        return self.space.largest()

    def smallest(self) -> Arch:
        return self.space.smallest()

    def sample(
        self, rng: np.random.Generator | int | None = None, n: int | None = None
    ) -> Arch | list[Arch]:
        """Uniformly random arch(s) of :attr:`space`."""
        return self.space.sample(rng, n)

    def _plan(self, arch: Mapping[str, Any]) -> Any:
        plan = None
        if isinstance(arch, Arch):  # validated archs are cached as they are: skip validation
            with self._plans_lock:
                plan = self._plans.get(arch)
            if plan is not None:
                return plan
        arch = self.space.validate(arch)
        with self._plans_lock:
            plan = self._plans.get(arch)
        if plan is None:
            plan = self._make_plan(arch)
            with self._plans_lock:
                self._plans[arch] = plan
                while len(self._plans) > 4096:
                    self._plans.popitem(last=False)
        return plan

    @abstractmethod
    def _make_plan(self, arch: Arch) -> Any:
        """The immutable per-arch description the forward pass reads (``plan.arch`` is the arch)."""

    # ---- the active subnet ---------------------------------------------------------------
    @contextlib.contextmanager
    def subnet(self, arch: Mapping[str, Any]) -> Iterator[Arch]:
        """Activates ``arch`` for forward passes in this thread (or task) only.

        Raises:
            SpaceError: ``arch`` is not in :attr:`space` (the message lists what is allowed).
        """
        with self._activate(ForwardState(self._plan(arch))) as state:
            yield state.plan.arch

    @contextlib.contextmanager
    def _activate(self, state: ForwardState) -> Iterator[ForwardState]:
        token = _ACTIVE.set(MappingProxyType({**_ACTIVE.get(), id(self): state}))
        try:
            yield state
        finally:
            _ACTIVE.reset(token)

    def _state(self) -> ForwardState:
        """The forward state of this thread's active subnet (the largest when none is)."""
        return _ACTIVE.get().get(id(self), self._largest)

    @property
    def active_arch(self) -> Arch:
        """The arch that ``forward`` computes in the calling thread."""
        return self._state().plan.arch

    def _stats(self, state: ForwardState) -> BNStats | None:
        """Eval-mode BN statistics for the state's subnet: re-calibrated ones when known (or
        computable from :attr:`calibration_inputs`), else None (sliced running statistics)."""
        if not self._has_bn or self.training or state.collect is not None:
            return None
        return self._eval_stats(state.plan.arch)

    def _eval_stats(self, arch: Arch) -> BNStats | None:
        stats = self._bn_stats.get(arch)
        if stats is None and self.calibration_inputs is not None:
            from nasviz.supernet._recalibrate import recalibrate

            stats = recalibrate(self, arch, self.calibration_inputs)
        return stats

    def clear_calibration(self) -> None:
        """Forgets every subnet's re-calibrated BN statistics (weights changed)."""
        self._bn_stats.clear()

    # ---- inputs --------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"{self.family} expects a tensor {what}, got {type(x).__name__}")
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise ShapeError(
                f"{self.family} expects input of shape (batch, {', '.join(map(str, shape))}) {what}; got {tuple(x.shape)}"
            )

    # ---- export and cost -----------------------------------------------------------------
    @torch.no_grad()
    def export(self, arch: Mapping[str, Any]) -> nn.Module:
        """A standalone module of plain torch layers (weights copied) computing subnet ``arch``.

        It is returned in eval mode; in eval mode its outputs equal the supernet's for ``arch``
        (BN layers carry the subnet's re-calibrated statistics when the supernet has them).
        Its ``arch`` and ``family`` attributes say where it came from.
        """
        state = ForwardState(self._plan(arch))
        stats = self._eval_stats(state.plan.arch) if self._has_bn else None
        static = self._export(state.plan, stats)
        static.arch = state.plan.arch
        static.family = self.family
        return static.eval()

    @abstractmethod
    def _export(self, plan: Any, stats: BNStats | None) -> nn.Module:
        """Builds the static module of ``plan`` (``stats``: BN statistics by key, or None)."""

    @abstractmethod
    def count_params(self, arch: Mapping[str, Any]) -> int:
        """Parameters of subnet ``arch`` without building it (equals the export's count)."""

    @abstractmethod
    def reorder_channels(self) -> None:
        """Sorts elastic channels by importance (L1 norm) so the first k are the best ones;
        the largest subnet's function is unchanged."""

    # ---- checkpoints ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes config, weights and calibration inputs (see :func:`save_supernet`)."""
        from nasviz.supernet._checkpoint import save_supernet

        return save_supernet(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Supernet:
        """A new supernet built from a checkpoint's config and weights; the checkpoint must be of
        this family (``Supernet.load`` accepts any)."""
        from nasviz.supernet._checkpoint import load_supernet

        return load_supernet(path, family=None if cls is Supernet else cls.family)

    def load_weights(self, path: str | Path) -> Supernet:
        """Loads a checkpoint's weights into this net; its config must equal :attr:`config`."""
        from nasviz.supernet._checkpoint import load_weights

        return load_weights(self, path)

    def extra_repr(self) -> str:
        size = self.space.size
        shown = f"{size:,}" if size < 10**12 else f"~10^{math.log10(size):.0f}"
        return f"subnets={shown}, params(largest)={self.count_params(self.largest()):,}"
