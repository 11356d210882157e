"""The supernet protocol: a space, a per-thread active subnet, exact export, checkpoints.

Which subnet a supernet computes is *not* module state. :meth:`Supernet.subnet` puts the arch's
plan into a :class:`contextvars.ContextVar` keyed by the supernet, so each thread (each
``concurrent.futures`` worker, each asyncio task) sees only the subnet it activated itself.
Outside any ``subnet(...)`` block a supernet computes its largest subnet.

Threads:
    * ``forward`` (eval mode), ``subnet``, ``export``, ``count_params``, ``count_macs`` and
      ``recalibrate`` may be called from many threads at once. Eval forwards without autograd
      read per-arch prepared weights (see ``_prepared.py``), made once and checked per call.
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
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from nasviz.errors import ConfigError, ShapeError, check_shape
from nasviz.space import Arch, SearchSpace
from nasviz.supernet._blocks import Block
from nasviz.supernet._prepared import Prepared, PreparedCache

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
        calibrate: False for a forward that must run nothing but itself (counting MACs): eval
            BN then uses the sliced running statistics instead of re-calibrating first.
    """

    plan: Any
    collect: dict[str, list] | None = None
    calibrate: bool = True


class _ArchCache:
    """arch -> value; a small thread-safe LRU (copies and pickles come back empty)."""

    def __init__(self, capacity: int = 512):
        self.capacity = capacity
        self._data: OrderedDict[Arch, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, arch: Arch) -> Any:
        with self._lock:
            value = self._data.get(arch)
            if value is not None:
                self._data.move_to_end(arch)
            return value

    def put(self, arch: Arch, value: Any) -> None:
        with self._lock:
            self._data[arch] = value
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __deepcopy__(self, memo: dict) -> _ArchCache:
        return _ArchCache(self.capacity)

    def __getstate__(self) -> dict:
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["capacity"])


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class Supernet(nn.Module, ABC):
    """Base class of weight-sharing supernets, and the way to write a family of your own.

    A family is a subclass decorated with :func:`register_supernet` (so that checkpoints and
    :meth:`load` find it) that sets ``family`` (its registry name), ``config_class`` (a frozen
    dataclass whose fields are its ``__init__`` arguments), and optionally ``shrink_order``
    (dimension groups in the order progressive shrinking opens them) and ``width_groups`` (the
    groups whose first channels :meth:`reorder_channels` sorts). Its ``__init__`` calls
    ``super().__init__(config)``, builds the modules and ``self.space`` and ends with
    :meth:`finish_init`. It implements these hooks (everything else, from ``with
    net.subnet(arch)`` per thread to search, training, checkpoints and export, comes from the
    base class):

    * ``_make_plan(arch) -> plan``: what the arch means for the layers, computed once per arch
      and cached: an immutable value whose ``arch`` attribute is the arch (a NamedTuple such as
      ``Plan(arch, widths)``).
    * ``forward(x)``: starts with ``self._check_input(x)`` and computes the subnet of
      :attr:`active_plan` (the calling thread's; the largest outside ``subnet()``), e.g. with
      the elastic layers of this package (``ElasticLinear(x, out_features)``, ...).
    * ``_check_shape(shape)``: raises ShapeError for an input shape the net cannot take.
    * ``_export(plan, stats) -> nn.Module``: the standalone model of a plan (copies of the
      sliced weights: :func:`export_linear`, :func:`export_conv`, :func:`export_bn`; ``stats``
      are re-calibrated batch-norm statistics or None).
    * ``count_params(arch)`` and ``_count_macs(plan, input_shape)``: equal to the export's.
    * ``reorder_channels(optimizer_state=None)``: sorts channels by importance
      (:func:`importance_order`, :func:`permute_rows`); a family without width may do nothing.

    ``tests/supernet/test_supernet_family.py`` writes one in about 40 lines.

    Attributes:
        config: the frozen dataclass the net was built from (checked when loading weights).
        space: the :class:`~nasviz.SearchSpace` of its subnets.
        calibration_inputs: training inputs used to re-calibrate BN statistics of a subnet on
            first use in eval mode (set by ``train_supernet``); None disables it.
    """

    family: ClassVar[str] = "Supernet"
    config_class: ClassVar[type]
    shrink_order: ClassVar[tuple[str, ...]] = ()
    width_groups: ClassVar[tuple[str, ...]] = ()  # dimension groups reorder_channels sorts
    default_epochs: ClassVar[int] = 20  # train_supernet's default recipe for this family
    default_lr: ClassVar[float] = 3e-3  # (AdamW peak learning rate, cosine decay)
    input_kind: ClassVar[str] = "inputs"  # what its inputs are, in words (for messages)
    renamed_config: ClassVar[Mapping[str, str]] = {}  # a config field's old name -> its new one

    def __init__(self, config: Any):
        super().__init__()
        if not dataclasses.is_dataclass(config) or not config.__dataclass_params__.frozen:
            raise ConfigError(
                f"a supernet config must be a frozen dataclass, got {type(config).__name__}"
            )
        self.config = config
        self.space: SearchSpace
        self.calibration_inputs: torch.Tensor | None = None
        self._bn_stats = _ArchCache(512)  # arch -> re-calibrated BN statistics
        self._plans = _ArchCache(4096)  # arch -> plan
        self._prepared_cache = PreparedCache()
        self._dtype_seen: torch.dtype | None = None  # the input dtype last checked and found right

    def finish_init(self) -> None:
        """Ends a family's ``__init__`` (after its modules and ``self.space`` exist)."""
        self._finish_init()

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

    @classmethod
    def saved_config(cls, saved: Mapping[str, Any]) -> dict[str, Any]:
        """A config dict read from a file (a checkpoint, a hardware profile) under today's
        field names (``renamed_config``): files written before a rename load as they are."""
        return {cls.renamed_config.get(k, k): v for k, v in saved.items()}

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

    def canonical(self, arch: Mapping[str, Any]) -> Arch:
        """The representative of every arch that computes the same subnet as ``arch``.

        Archs that differ only in dimensions the subnet never uses (the width of a layer past
        ``depth``, say) share one canonical arch: it is in :attr:`space`, ``canonical`` of it
        is itself, and its export has the same outputs and parameter count as ``arch``'s. A
        search can key its evaluations on it to avoid evaluating one subnet twice. Unused
        dimensions are set to their first (smallest) value. The base class has no unused
        dimensions and returns ``arch`` (validated).

        Raises:
            SpaceError: ``arch`` is not in :attr:`space`.
        """
        return self.space.validate(arch)

    def _plan(self, arch: Mapping[str, Any]) -> Any:
        # validated archs are cached as they are: a hit skips validation
        plan = self._plans.get(arch) if isinstance(arch, Arch) else None
        if plan is None:
            arch = self.space.validate(arch)
            plan = self._plans.get(arch)
            if plan is None:
                plan = self._make_plan(arch)
                if getattr(plan, "arch", None) != arch:
                    raise ConfigError(
                        f"{type(self).__name__}._make_plan must return an immutable value whose "
                        f"``arch`` is the arch (e.g. a NamedTuple with an arch field); got {plan!r}"
                    )
                self._plans.put(arch, plan)
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

    @property
    def active_plan(self) -> Any:
        """The plan (``_make_plan``'s value) that ``forward`` computes in the calling thread."""
        return self._state().plan

    def _stats(self, state: ForwardState) -> BNStats | None:
        """Eval-mode BN statistics for the state's subnet: re-calibrated ones when known (or
        computable from :attr:`calibration_inputs`), else None (sliced running statistics)."""
        if not self._has_bn or self.training or state.collect is not None or not state.calibrate:
            return None
        return self._eval_stats(state.plan.arch)

    def _eval_stats(self, arch: Arch) -> BNStats | None:
        stats = self._bn_stats.get(arch)
        if stats is None and self.calibration_inputs is not None:
            from nasviz.supernet._recalibrate import recalibrate

            stats = recalibrate(self, arch, self.calibration_inputs)
        return stats

    def _prepared(self, state: ForwardState, stats: BNStats | None) -> Prepared | None:
        """The active subnet's prepared weights for a forward that records no autograd graph in
        eval mode (one staleness check per forward); None when the layers must slice per call
        (training, autograd, a re-calibration pass)."""
        if self.training or state.collect is not None or torch.is_grad_enabled():
            return None
        return self._prepared_cache.get(state.plan.arch, stats)

    def clear_prepared(self) -> None:
        """Forgets every subnet's prepared weights. Needed only after editing weights through
        ``param.data`` (which version counters do not see); other changes are detected."""
        self._prepared_cache.clear()

    def _apply(self, fn: Any, recurse: bool = True) -> Supernet:
        self._prepared_cache.clear()  # .to(), .float(), ...: free what was made from old storage
        self._dtype_seen = None
        return super()._apply(fn, recurse)

    def clear_calibration(self) -> None:
        """Forgets every subnet's re-calibrated BN statistics (weights changed)."""
        self._bn_stats.clear()

    # ---- inputs --------------------------------------------------------------------------
    def _check_input(self, x: Any) -> None:
        """Raises ShapeError unless ``x`` is a tensor this net takes (shape, dtype, values)."""
        if not isinstance(x, torch.Tensor):
            raise ShapeError(
                f"{self.family} expects a tensor of {self.input_kind}, got {type(x).__name__}"
            )
        self._check_shape(x.shape)
        self._check_values(x)

    @abstractmethod
    def _check_shape(self, shape: tuple[int, ...]) -> None:
        """Raises ShapeError (naming the expected shape) unless inputs of ``shape`` (batch
        included) fit the net."""

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype of the inputs ``forward`` takes: its weights' (token models: int64).
        Subclasses have a ``head`` layer."""
        return self.head.weight.dtype

    def _check_values(self, x: torch.Tensor) -> None:
        """Raises ShapeError unless ``x`` has the :attr:`input_dtype` (token models check ids)."""
        if x.dtype == self._dtype_seen:  # fast path: reading the weights costs microseconds
            return
        dtype = self.input_dtype
        if x.dtype == dtype:
            self._dtype_seen = dtype  # forgotten by _apply (.to(), .double(), ...)
            return
        raise ShapeError(
            f"{self.family} expects {self.input_kind} as {_dtype_name(dtype)} (the dtype of "
            f"its weights); got {_dtype_name(x.dtype)}"
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

    def count_macs(self, arch: Mapping[str, Any], input_shape: Sequence[int]) -> int:
        """Multiply-accumulates of one forward pass of subnet ``arch`` on inputs of
        ``input_shape`` (batch included), in closed form: what
        :func:`nasviz.objectives.count_macs` counts on ``export(arch)`` (FLOPs that
        :class:`torch.utils.flop_counter.FlopCounterMode` counts, halved, with attention's two
        matrix products counted as the math backend computes them) without running anything.
        Convolutions and matrix products count; element-wise ops, norms and pooling do not.

        Raises:
            SpaceError: ``arch`` is not in :attr:`space`.
            ShapeError: the net does not take inputs of ``input_shape``.
        """
        if not isinstance(input_shape, Sequence) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape
        ):
            raise ShapeError(
                f"input_shape must be a tuple of positive ints including the batch, got {input_shape!r}"
            )
        shape = tuple(input_shape)
        self._check_shape(shape)
        return int(self._count_macs(self._plan(arch), shape))

    @abstractmethod
    def _count_macs(self, plan: Any, shape: tuple[int, ...]) -> int:
        """MACs of ``plan`` on a checked input shape (see :meth:`count_macs`)."""

    @abstractmethod
    def count_params(self, arch: Mapping[str, Any]) -> int:
        """Parameters of subnet ``arch`` without building it (equals the export's count)."""

    @abstractmethod
    def reorder_channels(self, optimizer_state: Mapping[torch.Tensor, Any] | None = None) -> None:
        """Sorts elastic channels by importance (L1 norm) so the first k are the best ones;
        the largest subnet's function is unchanged.

        Args:
            optimizer_state: ``optimizer.state`` of an optimizer over these parameters; its
                per-parameter tensors (AdamW's moments) are permuted with the weights, so
                training goes on exactly as it would have (up to rounding).
        """

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

    # ---- blocks (latency tables; the contract is in nasviz/supernet/_blocks.py) -----------
    def block_space(self) -> tuple[Block, ...]:
        """Every block of the net in forward order, with the dimensions that decide it and its
        choices (see :mod:`nasviz.supernet._blocks`).

        Raises:
            ConfigError: the family does not describe its blocks.
        """
        return self._block_space()

    def block_choices(self, arch: Mapping[str, Any]) -> tuple[tuple[str, Arch], ...]:
        """``(block name, choice)`` of each block subnet ``arch`` runs, in forward order.

        Raises:
            SpaceError: ``arch`` is not in :attr:`space`.
            ConfigError: the family does not describe its blocks.
        """
        return self._block_choices(self._plan(arch))

    def _block(self, name: str, choice: Mapping[str, Any]) -> tuple[Block, Arch]:
        """The block called ``name`` and ``choice`` as one of its choices, or a ConfigError."""
        blocks = {b.name: b for b in self.block_space()}
        if name not in blocks:
            raise ConfigError(f"{self.family} has no block {name!r}; its blocks: {list(blocks)}")
        block, choice = blocks[name], Arch(choice)
        if choice not in block.choices:
            raise ConfigError(
                f"block {name!r} of {self.family} has no choice {dict(choice)}; its choices: "
                f"{[dict(c) for c in block.choices]}"
            )
        return block, choice

    @torch.no_grad()
    def export_block(self, name: str, choice: Mapping[str, Any]) -> nn.Module:
        """A standalone module (plain torch layers, copied weights, eval mode) computing block
        ``name`` with ``choice``; chained over ``block_choices(arch)`` it computes
        ``export(arch)`` (with the supernet's own batch-norm statistics).

        Raises:
            ConfigError: an unknown block or choice (the message lists the known ones).
        """
        _, choice = self._block(name, choice)
        return self._export_block(name, choice).eval()

    def block_input_shape(
        self, name: str, choice: Mapping[str, Any], input_shape: Sequence[int]
    ) -> tuple[int, ...]:
        """The shape of block ``name``'s input (with ``choice``) when the net's input has
        ``input_shape`` (batch included).

        Raises:
            ShapeError: the net does not take inputs of ``input_shape``.
            ConfigError: an unknown block or choice.
        """
        shape = check_shape("input_shape (batch included)", input_shape)
        self._check_shape(shape)
        _, choice = self._block(name, choice)
        return tuple(self._block_input_shape(name, choice, shape))

    def _no_blocks(self) -> ConfigError:
        return ConfigError(
            f"{self.family} does not describe its blocks (block_space, block_choices, "
            "export_block, block_input_shape), which latency tables need; see "
            "nasviz.supernet._blocks for the contract"
        )

    def _block_space(self) -> tuple[Block, ...]:
        raise self._no_blocks()

    def _block_choices(self, plan: Any) -> tuple[tuple[str, Arch], ...]:
        raise self._no_blocks()

    def _export_block(self, name: str, choice: Arch) -> nn.Module:
        raise self._no_blocks()

    def _block_input_shape(
        self, name: str, choice: Arch, shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        raise self._no_blocks()

    def extra_repr(self) -> str:
        size = self.space.size
        shown = f"{size:,}" if size < 10**12 else f"~10^{math.log10(size):.0f}"
        return f"subnets={shown}, params(largest)={self.count_params(self.largest()):,}"


#: Supernet family name (``"ElasticCNN"``) -> class: the one registry checkpoints are resolved
#: through (fill it with :func:`register_supernet`).
FAMILIES: dict[str, type[Supernet]] = {}

S = TypeVar("S", bound=type)


def register_supernet(cls: S) -> S:
    """Class decorator: registers a :class:`Supernet` subclass under its ``family`` name, so
    that :meth:`Supernet.load` and checkpoints find it.

    Raises:
        ConfigError: not a Supernet subclass, no ``family`` set in the class body, no frozen
            dataclass ``config_class``, or the name taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Supernet)):
        raise ConfigError(f"register_supernet decorates Supernet subclasses, got {cls!r}")
    family = cls.__dict__.get("family")
    if not isinstance(family, str) or not family:
        raise ConfigError(
            f"{cls.__name__} must set family = '<name>' in its class body (its registry name)"
        )
    config = getattr(cls, "config_class", None)
    if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
        raise ConfigError(
            f"{cls.__name__}.config_class must be a frozen dataclass of its __init__ "
            f"arguments, got {config!r}"
        )
    known = FAMILIES.get(family)
    if known is not None and f"{known.__module__}.{known.__qualname__}" != (
        f"{cls.__module__}.{cls.__qualname__}"
    ):
        raise ConfigError(
            f"supernet family {family!r} is taken by {known.__module__}.{known.__qualname__}; "
            "choose another family name"
        )
    FAMILIES[family] = cls
    return cls
