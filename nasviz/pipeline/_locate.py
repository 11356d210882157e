"""Where nasviz's own notebooks are: inside the installed package, or in a source checkout.

A wheel ships them as ``nasviz/notebooks/`` (``pyproject.toml`` force-includes each .ipynb);
an editable install from a checkout finds the repository's ``notebooks/`` folder instead.
"""

from __future__ import annotations

from pathlib import Path

from nasviz.errors import ConfigError

__all__ = ["available_notebooks", "notebooks_dir", "resolve_notebook"]

_PACKAGE = Path(__file__).resolve().parents[1]
_PACKAGED = _PACKAGE / "notebooks"
_CHECKOUT = _PACKAGE.parent / "notebooks"


def notebooks_dir() -> Path:
    """The folder holding nasviz's notebooks: the packaged copy first, else the checkout's."""
    return _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def available_notebooks() -> list[str]:
    """Names ``resolve_notebook`` accepts (``"00_tour"``, ``"pipeline/2_search"``, ...)."""
    root = notebooks_dir()
    if not root.is_dir():
        return []
    return sorted(
        p.relative_to(root).with_suffix("").as_posix()
        for p in root.rglob("*.ipynb")
        if not {".ipynb_checkpoints", "runs"} & set(p.relative_to(root).parts)
    )


def resolve_notebook(notebook: str | Path) -> Path:
    """A notebook path, or a name from nasviz's notebooks (``"02_search"``)."""
    path = Path(notebook)
    root = notebooks_dir()
    for candidate in (
        path,
        path.with_suffix(".ipynb"),
        root / path,
        (root / path).with_suffix(".ipynb"),
    ):
        if candidate.suffix == ".ipynb" and candidate.is_file():
            return candidate
    known = ", ".join(available_notebooks()) or "(none found)"
    raise ConfigError(
        f"notebook {str(notebook)!r} not found; give a path to an .ipynb or one of: {known}"
    )
