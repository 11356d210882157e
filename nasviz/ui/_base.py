"""What every nasviz widget shares: a live view plus a static fallback, and static assets."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

__all__ = ["View", "static_asset"]

_HERE = Path(__file__).parent


def static_asset(name: str) -> Path:
    """Path of a front-end file (ES module or CSS) from the top-level ``widgets/`` folder.

    In a wheel the folder ships as ``nasviz/ui/static``; in an editable checkout it is read
    from the repository.
    """
    for folder in (_HERE / "static", _HERE.parent.parent / "widgets"):
        path = folder / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"nasviz front-end asset {name!r} is missing from nasviz/ui/static and widgets/"
    )


class View:
    """Base class of nasviz widgets (composition: a View *has* an ipywidgets tree, ``.widget``).

    Subclasses set ``self.widget`` (the live ipywidgets tree) and implement
    :meth:`static_figure`, a plotly Figure (or None) that stands in for the widget where no
    front end renders widgets: papermill/nbconvert outputs and reopened notebooks. Displaying
    a View emits both, and front ends pick the richest one they can render.
    """

    widget: Any = None

    def static_figure(self) -> Any:
        """A plotly Figure summarizing the current view, or None."""
        return None

    def static_html(self) -> str:
        """Self-contained HTML of :meth:`static_figure` (plotly.js from its CDN)."""
        fig = self.static_figure()
        if fig is None:
            return f"<pre>{html.escape(repr(self))}</pre>"
        return fig.to_html(include_plotlyjs="cdn", full_html=False)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        if self.widget is not None:
            data = self.widget._repr_mimebundle_(include=include, exclude=exclude)
            bundle.update(data[0] if isinstance(data, tuple) else data)
        bundle["text/html"] = self.static_html()
        bundle.setdefault("text/plain", repr(self))
        return bundle
