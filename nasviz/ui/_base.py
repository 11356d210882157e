"""What every nasviz widget shares: a live view plus a static fallback, and static assets.

A displayed view's output carries both the live widget and a static figure (HTML). The static
part is what a notebook shows where no front end renders widgets: papermill / nbconvert
outputs and notebooks reopened later. Views of long runs refresh it when their run ends:
the output is displayed with a ``display_id`` and replaced through ``update_display``, so an
executed notebook holds the final figure rather than the one drawn when the cell ran.
"""

from __future__ import annotations

import html
import threading
import uuid
import weakref
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
    front end renders widgets: papermill/nbconvert outputs and reopened notebooks; or override
    :meth:`static_html`. Displaying a View emits both, and front ends pick the richest one they
    can render.
    """

    widget: Any = None
    _display_id: str | None = None

    def static_figure(self) -> Any:
        """A plotly Figure summarizing the current view, or None."""
        return None

    def static_html(self) -> str:
        """Self-contained HTML of :meth:`static_figure` (plotly.js from its CDN)."""
        fig = self.static_figure()
        if fig is None:
            return f"<pre>{html.escape(repr(self))}</pre>"
        return fig.to_html(include_plotlyjs="cdn", full_html=False)

    def _materialize(self) -> None:
        """Creates what the view makes only once it is shown (called before display)."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        self._materialize()
        bundle: dict[str, Any] = {}
        if self.widget is not None:
            data = self.widget._repr_mimebundle_(include=include, exclude=exclude)
            bundle.update(data[0] if isinstance(data, tuple) else data)
        bundle["text/html"] = self.static_html()
        bundle.setdefault("text/plain", repr(self))
        return bundle

    def _ipython_display_(self) -> None:
        """Displays the bundle under this view's display id (one id for all its outputs)."""
        from IPython.display import display

        if self._display_id is None:
            self._display_id = uuid.uuid4().hex
        display(self._repr_mimebundle_(), raw=True, display_id=self._display_id)

    # ---- refreshing the static part ----------------------------------------------------------
    def refresh_static(self) -> bool:
        """Replaces every displayed output of this view with its current bundle (returns False
        when the view was never displayed). Safe from any thread."""
        if self._display_id is None:
            return False
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.display import update_display

        if not InteractiveShell.initialized():
            return False
        update_display(self._repr_mimebundle_(), raw=True, display_id=self._display_id)
        return True

    def _refresh_after_cell(self) -> None:
        """Refreshes the static part once more when the cell running now ends.

        Background threads cannot be relied on to reach a notebook: nbclient / papermill keep
        only messages whose parent is the cell being executed, and a thread's messages may
        carry another parent. An IPython ``post_run_cell`` hook runs in the kernel's main thread,
        inside the running cell, so its ``update_display`` lands in every client.
        """
        with _stale_lock:
            _stale.add(self)
        _ensure_hook()

    def _prepare_static(self) -> None:
        """Brings the view up to date before its static part is refreshed (main thread)."""


_stale: weakref.WeakSet[View] = weakref.WeakSet()
_stale_lock = threading.Lock()
_hooked: list[Any] = []  # the shell the hook is registered with


def _ensure_hook() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    if not InteractiveShell.initialized():
        return
    shell = InteractiveShell.instance()
    with _stale_lock:
        if shell in _hooked:
            return
        _hooked.append(shell)
    shell.events.register("post_run_cell", _refresh_stale)


def _refresh_stale(*_args: Any) -> None:
    """``post_run_cell`` hook: refreshes the views whose run ended meanwhile."""
    with _stale_lock:
        views = list(_stale)
        _stale.clear()
    for view in views:
        view._prepare_static()
        view.refresh_static()
