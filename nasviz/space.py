"""Search spaces and architectures.

A :class:`SearchSpace` is an ordered set of named, discrete dimensions. Numeric dimensions are
*ordinal*: their values are sorted ascending, so "largest" and "smallest" mean something and
encodings keep the order. Dimensions of strings are *categorical*: they keep the order given and
are one-hot encoded. An :class:`Arch` is one point of a space: an immutable, hashable, ordered
mapping from dimension name to value that round-trips through JSON. Two archs are equal when they
map the same names to equal values, in any order (mapping equality, like ``dict``); the order only
decides iteration and JSON key order.

Per-stage or per-layer choices are plain dimensions named ``"<name>.<index>"``; build them with
:meth:`SearchSpace.repeated` and read them back with :meth:`Arch.group`.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import ItemsView, Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np

from nasviz.errors import SpaceError, check_int, check_real

__all__ = ["Arch", "SearchSpace", "as_rng"]

Value = int | float | str | bool


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Returns a numpy Generator from a Generator, a seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(check_int("an rng seed", rng, 0, SpaceError))
    raise SpaceError(
        f"rng must be a numpy Generator, an int seed >= 0 or None, got {type(rng).__name__}"
    )


def _load_json_object(text: str, what: str) -> dict[str, Any]:
    """``json.loads(text)`` that must give an object; SpaceError (with the position) if not."""
    if not isinstance(text, str | bytes | bytearray):
        raise SpaceError(f"{what}.from_json needs a JSON string, got {type(text).__name__}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpaceError(
            f"{what}.from_json: not valid JSON ({exc.msg} at line {exc.lineno} column "
            f'{exc.colno}); expected an object such as {{"depth": 3}}'
        ) from exc
    if not isinstance(data, dict):
        raise SpaceError(f"{what}.from_json needs a JSON object, got {type(data).__name__}")
    return data


def _check_value(name: str, value: Any) -> Value:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpaceError(
                f"dimension {name!r}: value {value!r} is not finite; JSON cannot hold it"
            )
        return value
    raise SpaceError(
        f"dimension {name!r}: value {value!r} of type {type(value).__name__} is not allowed; "
        "values must be JSON scalars (int, float, str or bool)"
    )


class Arch(Mapping[str, Value]):
    """One architecture: an immutable, hashable, ordered mapping name -> value.

    Equality is mapping equality: two archs (or an arch and a dict) are equal when they map the
    same names to equal values, whatever the order, so equality is transitive across archs and
    dicts, and the hash ignores order too. The order is kept for iteration, ``repr`` and JSON.
    ``Arch`` does not know its space; :meth:`SearchSpace.validate` checks one against a space
    (and puts it in the space's order).
    """

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, Any] | Sequence[tuple[str, Any]] = (), **kwargs: Any):
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        pairs += list(kwargs.items())
        seen: set[str] = set()
        clean = []
        for name, value in pairs:
            if not isinstance(name, str):
                raise SpaceError(f"dimension names must be strings, got {name!r}")
            if name in seen:
                raise SpaceError(f"dimension {name!r} is given twice")
            seen.add(name)
            clean.append((name, _check_value(name, value)))
        object.__setattr__(self, "_items", tuple(clean))
        object.__setattr__(self, "_hash", hash(frozenset(clean)))  # order-free, like __eq__

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Arch is immutable; use arch.replace(name=value) for a changed copy")

    def __getitem__(self, name: str) -> Value:
        for key, value in self._items:
            if key == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Arch) and self._items == other._items:
            return True  # the common case (archs of one space share its order), without dicts
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{k}={v!r}" if k.isidentifier() else f"{k!r}: {v!r}" for k, v in self._items
        )
        return f"Arch({inner})"

    def __reduce__(self):
        return (Arch, (self._items,))

    def items(self) -> ItemsView[str, Value]:
        """In one pass (Mapping's default looks every key up again, O(n^2) in dimensions)."""
        return dict(self._items).items()

    def replace(self, **changes: Any) -> Arch:
        """Returns a copy with some values changed (names must already exist)."""
        unknown = set(changes) - set(self)
        if unknown:
            raise SpaceError(f"unknown dimension(s) {sorted(unknown)}; known: {list(self)}")
        return Arch([(k, changes.get(k, v)) for k, v in self._items])

    def group(self, name: str) -> tuple[Value, ...]:
        """Values of the repeated dimension ``name`` (``name.0``, ``name.1``, ...) in order."""
        values = []
        for i in itertools.count():
            key = f"{name}.{i}"
            if key not in self:
                break
            values.append(self[key])
        if not values:
            raise KeyError(f"no repeated dimension {name!r} (expected keys like '{name}.0')")
        return tuple(values)

    def to_json(self) -> str:
        """A compact JSON object, keys in order."""
        return json.dumps(dict(self._items), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Arch:
        """Inverse of :meth:`to_json`; SpaceError for text that is not a JSON object."""
        return cls(_load_json_object(text, "Arch"))


class SearchSpace:
    """An ordered, discrete search space.

    Args:
        dims: name -> non-empty sequence of distinct JSON scalars. Numeric dimensions are sorted
            ascending; string (and mixed) dimensions are categorical and keep their order.

    Example:
        >>> space = SearchSpace({"depth": [2, 3, 4], "width": [32, 64, 128]})
        >>> space.size
        9
        >>> space.largest()
        Arch(depth=4, width=128)
    """

    def __init__(self, dims: Mapping[str, Sequence[Any]]):
        if isinstance(dims, SearchSpace):
            dims = dims.dims
        if not isinstance(dims, Mapping) or not dims:
            raise SpaceError("a SearchSpace needs at least one dimension: {name: [values, ...]}")
        self._dims: dict[str, tuple[Value, ...]] = {}
        self._ordinal: dict[str, bool] = {}
        for name, values in dims.items():
            if not isinstance(name, str) or not name:
                raise SpaceError(f"dimension names must be non-empty strings, got {name!r}")
            if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
                raise SpaceError(f"dimension {name!r}: values must be a list, got {values!r}")
            clean = [_check_value(name, v) for v in values]
            if not clean:
                raise SpaceError(f"dimension {name!r} is empty; give at least one value")
            if len(set(clean)) != len(clean):  # note True == 1 == 1.0: those clash too
                dupes = sorted({repr(v) for v in clean if clean.count(v) > 1})
                raise SpaceError(
                    f"dimension {name!r} has duplicate values {', '.join(dupes)} in {clean!r}; "
                    "each value may appear once (True, 1 and 1.0 count as equal)"
                )
            ordinal = all(isinstance(v, int | float) and not isinstance(v, bool) for v in clean)
            self._dims[name] = tuple(sorted(clean)) if ordinal else tuple(clean)
            self._ordinal[name] = ordinal
        self._index = {
            name: {v: i for i, v in enumerate(vals)} for name, vals in self._dims.items()
        }

    # ---- construction helpers -------------------------------------------------------------
    @staticmethod
    def repeated(name: str, count: int, values: Sequence[Any]) -> dict[str, list[Any]]:
        """``{name.0: values, ..., name.{count-1}: values}`` for per-stage/per-layer choices."""
        if not isinstance(count, int) or count < 1:
            raise SpaceError(
                f"repeated dimension {name!r}: count must be an int >= 1, got {count!r}"
            )
        return {f"{name}.{i}": list(values) for i in range(count)}

    @classmethod
    def join(cls, *spaces: SearchSpace | Mapping[str, Sequence[Any]]) -> SearchSpace:
        """One space with every dimension of ``spaces``, in order (``a | b`` joins two).

        Raises:
            SpaceError: two spaces define a dimension of the same name (the message names it).
        """
        if not spaces:
            raise SpaceError("join needs at least one space")
        dims: dict[str, tuple[Value, ...]] = {}
        owner: dict[str, int] = {}
        for i, space in enumerate(spaces):
            space = space if isinstance(space, SearchSpace) else SearchSpace(space)
            for name, values in space._dims.items():
                if name in dims:
                    raise SpaceError(
                        f"cannot join spaces: dimension {name!r} is defined by space {owner[name]} "
                        f"and by space {i}; every dimension name may appear once (rename one)"
                    )
                dims[name], owner[name] = values, i
        return SearchSpace(dims)

    def __or__(self, other: SearchSpace) -> SearchSpace:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return SearchSpace.join(self, other)

    # ---- description ---------------------------------------------------------------------
    @property
    def dims(self) -> dict[str, tuple[Value, ...]]:
        """name -> allowed values, in order (a copy)."""
        return dict(self._dims)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._dims)

    def is_ordinal(self, name: str) -> bool:
        """True when the dimension is numeric (sorted, encoded by position)."""
        return self._ordinal[self._require(name)]

    @property
    def size(self) -> int:
        """The exact number of architectures (a Python int, exact past 10^19)."""
        return math.prod(len(v) for v in self._dims.values())

    def __len__(self) -> int:
        """The number of archs, as ``iter(space)`` yields them (``space.size``; dimensions:
        ``len(space.names)``; earlier releases counted dimensions)."""
        if self.size > sys.maxsize:
            raise SpaceError(
                f"the space holds {self.size} archs, more than len() can return; use space.size"
            )
        return self.size

    def __bool__(self) -> bool:
        return True  # a space always holds an arch (and len() may not fit its size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self._dims == other._dims

    def __hash__(self) -> int:
        return hash(tuple(self._dims.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {list(v)!r}" for k, v in self._dims.items())
        return f"SearchSpace({{{inner}}})"

    def __contains__(self, arch: object) -> bool:
        try:
            self.validate(arch)  # type: ignore[arg-type]
        except SpaceError:
            return False
        return True

    def __iter__(self) -> Iterator[Arch]:
        """Every architecture, in lexicographic order of value indices (mind ``size``)."""
        names = self.names
        for combo in itertools.product(*self._dims.values()):
            yield Arch(zip(names, combo, strict=True))

    def to_dict(self) -> dict[str, list[Value]]:
        return {k: list(v) for k, v in self._dims.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        """Inverse of :meth:`to_json`; SpaceError for text that is not a JSON object."""
        return cls(_load_json_object(text, "SearchSpace"))

    # ---- points --------------------------------------------------------------------------
    def _require(self, name: str) -> str:
        if name not in self._dims:
            raise SpaceError(f"unknown dimension {name!r}; known dimensions: {list(self._dims)}")
        return name

    def validate(self, arch: Mapping[str, Any]) -> Arch:
        """Returns ``arch`` as an :class:`Arch` in this space's order, or raises SpaceError.

        The error names the offending dimension and lists what it allows.
        """
        if not isinstance(arch, Mapping):
            raise SpaceError(f"an arch is a mapping name -> value, got {type(arch).__name__}")
        for name in arch:
            self._require(name)
        missing = [n for n in self._dims if n not in arch]
        if missing:
            allowed = "; ".join(f"{n}: {list(self._dims[n])}" for n in missing)
            raise SpaceError(
                f"arch is missing dimension(s) {missing} (allowed values: {allowed}); "
                f"a full arch sets all of {list(self._dims)}"
            )
        items = []
        for name, allowed in self._dims.items():
            value = arch[name]
            if isinstance(value, np.generic):
                value = value.item()
            if not self._has(name, value):
                raise SpaceError(
                    f"dimension {name!r}: {value!r} is not allowed; allowed values: {list(allowed)}"
                )
            items.append((name, allowed[self._position(name, value)]))
        return Arch(items)

    def arch(self, **values: Any) -> Arch:
        """Builds and validates an arch from keyword arguments: ``space.arch(depth=3, width=64)``."""
        return self.validate(values)

    def _has(self, name: str, value: Any) -> bool:
        try:
            self._position(name, value)
        except (KeyError, TypeError):
            return False
        return True

    def _position(self, name: str, value: Any) -> int:
        i = self._index[name][value]
        if isinstance(self._dims[name][i], bool) != isinstance(value, bool):
            raise KeyError(value)  # True == 1 in Python; not in a search space
        return i

    def index_of(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        """Positions of each value within its dimension."""
        arch = self.validate(arch)
        return tuple(self._index[n][arch[n]] for n in self._dims)

    def from_indices(self, indices: Sequence[int]) -> Arch:
        """Inverse of :meth:`index_of`: one int position per dimension."""
        if len(indices) != len(self._dims):
            raise SpaceError(
                f"expected {len(self._dims)} indices (one per dimension), got {len(indices)}"
            )
        items = []
        for (name, values), i in zip(self._dims.items(), indices, strict=True):
            last = len(values) - 1
            i = check_int(f"dimension {name!r}: index (0..{last})", i, error=SpaceError)
            if not 0 <= i <= last:
                raise SpaceError(f"dimension {name!r}: index {i} out of range 0..{last}")
            items.append((name, values[i]))
        return Arch(items)

    def largest(self) -> Arch:
        """The last value of every dimension (the biggest for numeric dimensions)."""
        return self.from_indices([len(v) - 1 for v in self._dims.values()])

    def smallest(self) -> Arch:
        """The first value of every dimension (the smallest for numeric dimensions)."""
        return self.from_indices([0] * len(self._dims))

    @overload
    def sample(self, rng: np.random.Generator | int | None = None, n: None = None) -> Arch: ...

    @overload
    def sample(self, rng: np.random.Generator | int | None, n: int) -> list[Arch]: ...

    @overload
    def sample(self, rng: np.random.Generator | int | None = None, *, n: int) -> list[Arch]: ...

    def sample(
        self, rng: np.random.Generator | int | None = None, n: int | None = None
    ) -> Arch | list[Arch]:
        """One uniformly random arch (``n`` None), or a list of ``n`` (with replacement): the
        return type follows from ``n`` alone (typed with overloads)."""
        rng = as_rng(rng)
        if n is None:
            return self.from_indices([int(rng.integers(len(v))) for v in self._dims.values()])
        n = check_int("n (the number of archs to sample)", n, 0, SpaceError)
        cols = [rng.integers(len(v), size=n) for v in self._dims.values()]
        return [self.from_indices([int(c[j]) for c in cols]) for j in range(n)]

    def neighbors(self, arch: Mapping[str, Any]) -> list[Arch]:
        """Archs one step away: an adjacent value of one ordinal dimension, or any other value
        of one categorical dimension."""
        base = list(self.index_of(arch))
        out = []
        for d, (name, values) in enumerate(self._dims.items()):
            if self._ordinal[name]:
                options = [i for i in (base[d] - 1, base[d] + 1) if 0 <= i < len(values)]
            else:
                options = [i for i in range(len(values)) if i != base[d]]
            for i in options:
                idx = base.copy()
                idx[d] = i
                out.append(self.from_indices(idx))
        return out

    def mutate(
        self,
        arch: Mapping[str, Any],
        rng: np.random.Generator | int | None = None,
        prob: float | None = None,
    ) -> Arch:
        """Resamples each dimension with probability ``prob`` (default 1/len); the result always
        differs from ``arch`` when the space has more than one arch."""
        rng = as_rng(rng)
        base = list(self.index_of(arch))
        prob = 1.0 / len(self._dims) if prob is None else check_real("prob", prob, SpaceError)
        if not 0.0 <= prob <= 1.0:
            raise SpaceError(f"mutation prob must be in [0, 1], got {prob}")
        if self.size == 1:
            return self.from_indices(base)
        sizes = [len(v) for v in self._dims.values()]
        changeable = [d for d, s in enumerate(sizes) if s > 1]
        idx = base.copy()
        while idx == base:
            for d in changeable:
                if rng.random() < prob:
                    idx[d] = int(rng.integers(sizes[d] - 1))
                    idx[d] += idx[d] >= base[d]  # any value but the current one
            if idx == base and prob == 0.0:
                d = changeable[int(rng.integers(len(changeable)))]
                idx[d] = (base[d] + 1 + int(rng.integers(sizes[d] - 1))) % sizes[d]
        return self.from_indices(idx)

    # ---- encodings for predictors --------------------------------------------------------
    @property
    def encoding_size(self) -> int:
        """Length of :meth:`encode`'s vector."""
        return sum(1 if self._ordinal[n] else len(v) for n, v in self._dims.items())

    def encode(self, arch: Mapping[str, Any]) -> np.ndarray:
        """A float vector: ordinal dimensions as position/(n-1) in [0, 1] (0 for a single value),
        categorical dimensions one-hot."""
        idx = self.index_of(arch)
        out = np.zeros(self.encoding_size, dtype=np.float64)
        pos = 0
        for (name, values), i in zip(self._dims.items(), idx, strict=True):
            if self._ordinal[name]:
                out[pos] = i / (len(values) - 1) if len(values) > 1 else 0.0
                pos += 1
            else:
                out[pos + i] = 1.0
                pos += len(values)
        return out

    def encode_many(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encodes several archs into an (n, encoding_size) matrix."""
        if not archs:
            return np.zeros((0, self.encoding_size))
        return np.stack([self.encode(a) for a in archs])

    def decode(self, vector: Sequence[float] | np.ndarray) -> Arch:
        """The arch whose encoding is nearest (Euclidean) to ``vector``: ordinal positions are
        rounded to the nearest value (clipped to the ends), one-hot blocks take their argmax."""
        try:
            vec = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SpaceError(
                f"an encoding is a vector of {self.encoding_size} finite floats; got {vector!r}"
            ) from exc
        if vec.shape != (self.encoding_size,):
            raise SpaceError(
                f"expected an encoding of shape ({self.encoding_size},), got {vec.shape}"
            )
        bad = np.flatnonzero(~np.isfinite(vec))
        if len(bad):
            raise SpaceError(
                f"an encoding must be finite; positions {bad.tolist()} hold "
                f"{vec[bad].tolist()} (ordinal positions lie in [0, 1], one-hot blocks in {{0, 1}})"
            )
        idx = []
        pos = 0
        for name, values in self._dims.items():
            if self._ordinal[name]:
                n = len(values)
                idx.append(int(np.clip(round(float(vec[pos]) * (n - 1)), 0, n - 1)) if n > 1 else 0)
                pos += 1
            else:
                idx.append(int(np.argmax(vec[pos : pos + len(values)])))
                pos += len(values)
        return self.from_indices(idx)
