"""Griffe extensions (mkdocstrings' reader) for two conventions nasviz's docstrings use.

* :class:`CommentDocstrings`: a constant documented by ``#:`` comment lines right above its
  assignment (as Sphinx reads it) gets those lines as its docstring, so the reference renders
  them and the check in ``docs/_api.py`` counts the constant as documented. A docstring string
  below the assignment wins.
* :class:`SharedArgs`: an ``Args:`` entry documenting several parameters at once
  (``val, test: fractions held out``) becomes one entry per parameter with that description, so
  griffe checks each name against the signature (a misspelt one still fails the build).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

#: The sections whose entries are parameters.
_PARAM_SECTIONS = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Keyword Arguments):\s*$"
)
#: An entry naming several parameters: ``a, b (type): text``.
_SHARED = re.compile(r"^(?P<names>\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)(?P<rest>\s*(?:\([^)]*\))?:.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_shared_args(text: str) -> str:
    """``text`` (a docstring) with every ``a, b: description`` parameter entry written as one
    entry per name, each with the description (and its continuation lines)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        header = _PARAM_SECTIONS.match(lines[i])
        out.append(lines[i])
        i += 1
        if not header:
            continue
        body_end = i
        while body_end < len(lines) and (
            not lines[body_end].strip() or _indent(lines[body_end]) > len(header[1])
        ):
            body_end += 1
        body = lines[i:body_end]
        item = min((_indent(line) for line in body if line.strip()), default=0)
        j = 0
        while j < len(body):
            entry = body[j]
            end = j + 1
            while end < len(body) and (not body[end].strip() or _indent(body[end]) > item):
                end += 1
            while end > j + 1 and not body[end - 1].strip():  # blank lines after the entry
                end -= 1
            shared = _SHARED.match(entry.strip()) if _indent(entry) == item else None
            if shared:
                for name in re.split(r"\s*,\s*", shared["names"]):
                    out.append(" " * item + name + shared["rest"])
                    out.extend(body[j + 1 : end])
            else:
                out.extend(body[j:end])
            j = end
        i = body_end
    return "\n".join(out)


class CommentDocstrings(griffe.Extension):
    """``#:`` comments above a module- or class-level assignment become its docstring."""

    def on_attribute_instance(self, *, node: Any, attr: griffe.Attribute, **kwargs: Any) -> None:
        if attr.docstring is not None or not attr.lineno:
            return
        try:
            lines = attr.lines_collection[attr.filepath]
        except (KeyError, TypeError):
            return
        comment: list[str] = []
        at = attr.lineno - 2  # the line above the assignment (lineno counts from 1)
        while at >= 0 and lines[at].strip().startswith("#:"):
            comment.insert(0, lines[at].strip()[2:].strip())
            at -= 1
        if comment:
            attr.docstring = griffe.Docstring(
                " ".join(comment), lineno=at + 2, endlineno=attr.lineno - 1, parent=attr
            )


class SharedArgs(griffe.Extension):
    """Splits ``a, b: text`` parameter entries (see :func:`split_shared_args`)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and "," in obj.docstring.value:
            obj.docstring.value = split_shared_args(obj.docstring.value)


def extensions() -> Any:
    """The extensions the docs load (for ``griffe.load``)."""
    return griffe.load_extensions(CommentDocstrings, SharedArgs)
