"""A notebook's ``parameters`` cell, read as declarations that values are checked against.

Each top-level assignment of the cell tagged ``parameters`` declares one parameter; what a
notebook says about it is checked *before* a kernel starts:

* its type: an annotation (``budget: int = 24``, ``storage: "Optional[str]" = None``), else
  the type of its default's literal value; ``None`` passes only where the annotation or the
  default allows it;
* its choices, in its comment: ``strategy = "nsga2"  # one of: "random", "nsga2", "predictor"``
  (or an annotation ``Literal["random", "nsga2", "predictor"]``);
* a bound, in its comment: ``budget = 24  # evaluations (≥ 1)`` (``≥``, ``>``, ``≤``, ``<``;
  ``>=`` and ``<=`` work too);
* the comment is the parameter's help (``nasviz params NOTEBOOK`` prints it).

The forms above are also ones papermill's own parameter parser reads (it gives up on a line
with two ``=`` or an annotation with ``|``), so papermill run directly stays quiet as well. The
cell is parsed with :mod:`ast`, never executed.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasviz.errors import ConfigError

__all__ = ["Parameter", "check_values", "declared_parameters"]

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_BOUND = re.compile(r"\((>=|≥|>|<=|≤|<)\s*(-?\d+(?:\.\d+)?)\)")
_SYMBOLS = {"≥": ">=", "≤": "<="}
_CHOICES = re.compile(r"one of:?\s*(.+?)\s*(?:;|$)")
_NO_DEFAULT = object()


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: ``type`` is a name such as ``"int"`` or ``"str | None"`` (``"None"``
    when unknown), ``default`` the source text of its value."""

    name: str
    default: str
    type: str
    help: str = ""
    choices: tuple[Any, ...] | None = None
    bound: tuple[str, float] | None = None
    value: Any = field(default=_NO_DEFAULT, compare=False)

    @property
    def literal(self) -> bool:
        """Whether the default is a literal value (``value`` holds it)."""
        return self.value is not _NO_DEFAULT

    @property
    def optional(self) -> bool:
        """Whether None is an allowed value."""
        return "None" in self.type.split(" | ") or self.value is None

    def describe(self) -> dict[str, Any]:
        """The plain mapping ``notebook_parameters`` returns."""
        return {
            "default": self.default,
            "type": self.type,
            "help": self.help,
            "choices": self.choices,
            "bound": self.bound,
        }


def _comments(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line."""
    found: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return found


def _annotation(node: ast.expr | None, source: str) -> tuple[str, tuple[Any, ...] | None]:
    """``(type name, choices)`` of an annotation (a string annotation is read as its text)."""
    if node is None:
        return "None", None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            text = node.value
            node, source = ast.parse(text, mode="eval").body, text
        except SyntaxError:
            return str(node.value), None
    if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        choices = tuple(ast.literal_eval(item) for item in items)
        kinds = sorted({type(c).__name__ for c in choices})
        return " | ".join(kinds), choices
    if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Optional":
        return f"{ast.get_source_segment(source, node.slice)} | None", None
    return str(ast.get_source_segment(source, node)), None


def parse_parameters(source: str) -> dict[str, Parameter]:
    """The parameters declared by a ``parameters`` cell's source."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConfigError(f"the parameters cell is not valid Python: {exc}") from exc
    comments = _comments(source)
    declared: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, value, annotation = node.target.id, node.value, node.annotation
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            name, value, annotation = node.targets[0].id, node.value, None
        else:
            continue
        if value is None:
            continue
        default = str(ast.get_source_segment(source, value))
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            literal = _NO_DEFAULT
        kind, choices = _annotation(annotation, source)
        if kind == "None" and literal is not _NO_DEFAULT and literal is not None:
            kind = type(literal).__name__
        help_text = comments.get(node.lineno, "")
        bound = _BOUND.search(help_text)
        listed = _CHOICES.search(help_text)
        if choices is None and listed:
            try:
                choices = tuple(ast.literal_eval(f"({listed.group(1)},)"))
            except (ValueError, SyntaxError):
                choices = None
        declared[name] = Parameter(
            name,
            default,
            kind,
            help_text,
            choices,
            (_SYMBOLS.get(bound.group(1), bound.group(1)), float(bound.group(2)))
            if bound
            else None,
            literal,
        )
    return declared


def declared_parameters(path: Path) -> dict[str, Parameter]:
    """The parameters of the notebook at ``path`` (its cell tagged ``parameters``)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ConfigError(
            f"{path.name} has no cell tagged 'parameters'; tag one to make it a pipeline step"
        )
    return parse_parameters(cells[0].source)


def _type_ok(value: Any, kind: str) -> bool | None:
    """Whether ``value`` has type ``kind`` (None: the type is not one nasviz checks)."""
    allowed: tuple[type, ...] = ()
    for part in kind.split(" | "):
        if part == "None":
            continue
        if part not in _TYPES:
            return None
        allowed += _TYPES[part]
    if not allowed:
        return None
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)


def _within(value: Any, bound: tuple[str, float]) -> bool:
    op, limit = bound
    return {
        ">=": value >= limit,
        ">": value > limit,
        "<=": value <= limit,
        "<": value < limit,
    }[op]


def check_values(path: Path, declared: Mapping[str, Parameter], given: Mapping[str, Any]) -> None:
    """Raises ConfigError for a name the notebook does not declare, or a value whose type,
    choice or bound the notebook rules out (the message says what is allowed)."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(
            f"{path.name} has no parameter(s) {unknown}; its parameters are: "
            + ", ".join(f"{n} ({p.type}, default {p.default})" for n, p in declared.items())
        )
    for name, value in given.items():
        p = declared[name]
        where = f"{path.name}: parameter {name!r}"
        if value is None:
            if not p.optional and p.type != "None":
                raise ConfigError(f"{where} expects {p.type} (default {p.default}), got None")
            continue
        if _type_ok(value, p.type) is False:
            raise ConfigError(
                f"{where} expects {p.type} (default {p.default}), "
                f"got {type(value).__name__} {value!r}"
            )
        if p.choices is not None and value not in p.choices:
            raise ConfigError(
                f"{where} must be one of {list(p.choices)} (default {p.default}), got {value!r}"
            )
        if p.bound is not None and isinstance(value, int | float) and not _within(value, p.bound):
            op, limit = p.bound
            shown = int(limit) if limit == int(limit) else limit
            words = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than"}
            raise ConfigError(
                f"{where} must be {words[op]} {shown} (default {p.default}), got {value!r}"
            )
