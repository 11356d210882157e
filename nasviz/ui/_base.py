"""What every nasviz widget shares: a live view plus a static figure, and static assets.

Where a person runs the notebook (JupyterLab, Notebook, VS Code), a displayed view's output
carries the live widget and its static figure as plotly JSON: a front end that cannot show the
widget (an untrusted reopened notebook) draws the figure instead. Where a program runs it
(papermill, nbclient, nbval, ``jupyter nbconvert --execute``, ``nasviz run``: see
:func:`nasviz.viz._static.headless`), nobody could ever use the widget, so the output is the
static figure alone, as a report: plotly JSON plus a PNG, no widget, no CDN. There a view's
controls are built without a connection to any front end (``comm.DummyComm``): they work as
objects, but no widget model is sent, so the runner saves no widget state in the notebook (a
figure widget's state holds plotly's 5 MB front-end module; and JupyterLab, reopening a notebook
with saved widget state, asks the new kernel for every saved model, "No such comm").

Views of long runs refresh the static part when their run ends: the output is displayed with a
``display_id`` and replaced through ``update_display``, so an executed notebook holds the final
figure rather than the one drawn when the cell ran.

A view is not itself an ipywidget: to lay views out together, put their ``.widget`` in a
container, ``ipywidgets.HBox([dashboard.widget, explorer.widget])`` (the figures are made when
the container is shown; the container has no static fallback).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nasviz.viz._static import PLOTLY_MIME, headless, static_bundle

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


_offline_lock = threading.RLock()


@contextlib.contextmanager
def _offline_widgets() -> Iterator[None]:
    """Widgets made in this block (in any thread) get a comm that sends nothing."""
    import comm

    with _offline_lock:
        real = comm.create_comm
        comm.create_comm = comm.DummyComm
        try:
            yield
        finally:
            comm.create_comm = real


class View:
    """Base class of nasviz widgets (composition: a View *has* an ipywidgets tree, ``.widget``).

    Subclasses set ``self.widget`` (the live ipywidgets tree) and implement
    :meth:`static_figure`, a plotly Figure (or None) that stands in for the widget where no
    front end renders widgets, or override :meth:`static_bundle`. See the module docstring for
    what a displayed view emits where.
    """

    widget: Any = None
    _display_id: str | None = None
    #: whether this view is displayed for a program rather than a person (decided when it is
    #: first displayed, in the cell's thread; later refreshes from other threads keep it)
    _headless: bool | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Builds every view's widgets offline where a program runs the notebook (see the
        module docstring)."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self: View, *args: Any, **kw: Any) -> None:
            if self._headless is None:
                self._headless = headless()
            if not self._headless:
                init(self, *args, **kw)
                return
            with _offline_widgets():
                init(self, *args, **kw)

        cls.__init__ = __init__  # type: ignore[method-assign]

    def static_figure(self) -> Any:
        """A plotly Figure summarizing the current view, or None."""
        return None

    def static_bundle(self, image: bool = True) -> dict[str, Any]:
        """The view's static form: its figure as plotly JSON, a PNG when ``image`` (and kaleido
        can make one), and a text line."""
        fig = self.static_figure()
        if fig is None:
            return {"text/plain": repr(self)}
        bundle = static_bundle(fig, image=image, note=repr(self))
        return bundle

    def _materialize(self) -> None:
        """Creates what the view makes only once it is shown (called before display)."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if self._headless is None:
            self._headless = headless()
        if self._headless:
            return self.static_bundle(image=True)
        self._materialize()
        bundle: dict[str, Any] = {}
        if self.widget is not None:
            data = self.widget._repr_mimebundle_(include=include, exclude=exclude)
            bundle.update(data[0] if isinstance(data, tuple) else data)
        static = self.static_bundle(image=False)
        for key in (PLOTLY_MIME, "image/svg+xml"):
            if key in static:
                bundle[key] = static[key]
        bundle["text/plain"] = repr(self)
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
