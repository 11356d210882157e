"""The API reference must cover every public name: the check ``make docs`` (and a test) run.

Public modules are nasviz's packages and modules whose names do not start with ``_``
(``nasviz.prune``, ``nasviz.space``, ...). Each needs a page in ``docs/reference/`` that renders
it (``::: nasviz.prune``), and every name in its ``__all__`` needs a docstring there: a class,
a function, or a constant with a docstring string right below its assignment. The top-level
``nasviz`` re-exports names documented in their own modules (its page shows its docstring).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
DIRECTIVE = re.compile(r"^:::\s*([\w.]+)", re.MULTILINE)

#: Public names without a docstring in files other branches own, tolerated until their owners
#: add one (a docstring string below the assignment, or ``#:`` comment lines above it); nothing
#: else may be undocumented.
UNDOCUMENTED_ELSEWHERE: frozenset[tuple[str, str]] = frozenset(
    {
        ("nasviz.pipeline", "STEPS"),  # nasviz/pipeline/_chain.py (w20)
        ("nasviz.prune", "METHODS"),  # nasviz/prune/_sweep.py (w17)
        ("nasviz.runner", "BACKGROUND_NICE"),  # nasviz/runner.py
        ("nasviz.objectives", "DIRECTIONS"),  # nasviz/objectives.py (w14)
        ("nasviz.viz", "ArchInfo"),  # nasviz/viz/_arch.py (w20)
        ("nasviz.viz", "LayerSparsityInfo"),  # nasviz/viz/_masks.py (w20)
        ("nasviz.viz", "hypervolume_figure"),  # nasviz/viz/_pareto.py (w20)
        ("nasviz.viz", "BitStripInfo"),  # nasviz/viz/_quant.py (w16b)
        ("nasviz.viz", "SensitivityInfo"),  # nasviz/viz/_quant.py (w16b)
        ("nasviz.quant", "GRANULARITIES"),  # nasviz/quant/_space.py (w16b)
        ("nasviz.quant", "MODES"),  # nasviz/quant/_ptq.py (w16b)
        ("nasviz.hardware", "RUNTIMES"),  # nasviz/hardware/_runtime.py (w18)
        ("nasviz.export", "ExampleInput"),  # nasviz/export/_onnx.py (w18)
    }
)


def load(package: str = "nasviz", search_path: Path = ROOT) -> Any:
    """The package as griffe (mkdocstrings' reader) sees it: statically, aliases resolved."""
    import griffe

    from docs._griffe import extensions

    return griffe.load(
        package,
        search_paths=[str(search_path)],
        docstring_parser="google",
        resolve_aliases=True,
        resolve_external=False,
        extensions=extensions(),
    )


def public_modules(package: Any) -> list[Any]:
    """The package's public modules and subpackages (and their public ones), by path."""
    found, todo = [], [package]
    while todo:
        module = todo.pop()
        for name, member in module.modules.items():
            if not name.startswith("_"):
                found.append(member)
                todo.append(member)
    return sorted(found, key=lambda m: m.path)


def documented_pages(folder: Path = REFERENCE) -> dict[str, list[str]]:
    """module path -> every object rendered on the reference page that renders the module
    (``::: nasviz.prune`` renders ``nasviz.prune``; a lazy module's page may render its names
    one by one from where they are defined: ``::: nasviz.ui._dashboard.SearchDashboard``)."""
    out: dict[str, list[str]] = {}
    for page in sorted(folder.glob("*.md")):
        rendered = DIRECTIVE.findall(page.read_text())
        for name in rendered:
            out.setdefault(name, rendered)
    return out


def exports(module: Any) -> list[str]:
    """The names in a module's ``__all__``: read statically, or, where ``__all__`` is built in
    a way griffe cannot follow (``[*_LAZY]``), from the imported module."""
    static = [str(e) for e in (module.exports or ())]
    if all(not n.startswith("_") for n in static):
        return static
    import importlib

    return list(importlib.import_module(module.path).__all__)


def _docstring(member: Any) -> str:
    try:
        target = member.final_target if member.is_alias else member
    except Exception:  # an alias griffe cannot resolve (an external object)
        return ""
    return (target.docstring.value if target.docstring else "").strip()


def _member(package: Any, module: Any, name: str, rendered: list[str]) -> Any:
    """``module.name`` as griffe sees it: a member, or (a lazy module's name) the object its
    page renders at a path ending in ``.name``."""
    if name in module.members:
        return module.members[name]
    top = package.path + "."
    for path in rendered:
        if path.endswith(f".{name}") and path.startswith(top):
            try:
                return package[path[len(top) :]]
            except KeyError:
                return None
    return None


def problems(
    package: Any,
    pages: dict[str, list[str]],
    tolerated: frozenset[tuple[str, str]] = UNDOCUMENTED_ELSEWHERE,
) -> list[str]:
    """Every public module without a reference page, every name of an ``__all__`` its page
    does not render, and every one without a docstring (except ``tolerated`` ones), one line
    each; empty when all is documented."""
    out = []
    for module in public_modules(package):
        if module.path not in pages:
            short = module.path.rpartition(".")[2]
            out.append(
                f"{module.path} has no reference page: add docs/reference/{short}.md holding "
                f"'# `{module.path}`' and '::: {module.path}'"
            )
            continue
        for name in exports(module):
            if (module.path, name) in tolerated:
                continue
            member = _member(package, module, name, pages[module.path])
            if member is None:
                out.append(
                    f"{module.path}.{name} (in __all__) is not on the module's reference page: "
                    "render it there with '::: <the path where it is defined>'"
                )
            elif not member.is_module and not _docstring(member):
                out.append(f"{module.path}.{name} (in __all__) has no docstring")
    return out
