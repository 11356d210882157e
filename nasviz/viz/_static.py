"""Figures that read as a report in a saved notebook: plotly JSON plus a PNG, no CDN, no widget.

What a notebook keeps of a figure decides where it shows:

* ``application/vnd.plotly.v1+json``: JupyterLab (trusted or not, offline: its plotly extension
  ships plotly.js), VS Code and nteract draw it interactively;
* ``image/png`` (rendered by kaleido, :mod:`nasviz.viz._image`): nbconvert's HTML and PDF,
  GitHub, anything without JavaScript;
* ``text/plain``: the figure's title, and why there is no image when there is none.

No ``text/html``: plotly's HTML loads plotly.js from a CDN (blank offline and in untrusted
notebooks) or inlines 4.6 MB of it per figure, and nbconvert would prefer it to the PNG.

:func:`headless` tells a notebook run by a program (papermill, nbclient, nbval, ``jupyter
nbconvert --execute``, ``nasviz run``) from one a person runs: such runners cannot answer input
requests and say so (``allow_stdin`` is false in their execute requests), and nobody renders
widgets there. nasviz views then emit only their static figure (see :mod:`nasviz.ui._base`),
and nasviz figures add the PNG.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from nasviz.viz._image import png, unavailable
from nasviz.viz._style import TEMPLATE

__all__ = ["PLOTLY_MIME", "Figure", "as_figure", "headless", "static_bundle", "styled"]

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def headless() -> bool:
    """Whether the code runs in a Jupyter kernel driven by a program, not a person: the cell's
    execute request came with ``allow_stdin`` false (nbclient, papermill, nbval do that; JupyterLab,
    Notebook and VS Code allow input). False outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    try:
        parent = kernel.get_parent("shell")
    except TypeError:  # ipykernel < 6.25 has no channel argument
        parent = kernel.get_parent()
    content = (parent or {}).get("content") or {}
    if "allow_stdin" in content:
        return not content["allow_stdin"]
    return not getattr(kernel, "_allow_stdin", True)


def _size(layout: dict[str, Any]) -> tuple[int, int]:
    width = layout.get("width") or 760
    height = layout.get("height") or 450
    return int(width), int(height)


def static_bundle(fig: go.Figure, image: bool = True, note: str = "") -> dict[str, Any]:
    """The report form of ``fig``: plotly JSON, a PNG (with ``image`` and where kaleido can make
    one) and a text line (``note`` appended)."""
    spec = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())[PLOTLY_MIME]
    bundle: dict[str, Any] = {PLOTLY_MIME: spec}
    title = (spec.get("layout", {}).get("title") or {}).get("text") or "plotly figure"
    text = f"<{title}>"
    if image:
        picture = png(spec, *_size(spec.get("layout", {})))
        if picture is not None:
            import base64

            bundle["image/png"] = base64.b64encode(picture).decode("ascii")
        else:
            text += f"\n(no static image: {unavailable()})"
    bundle["text/plain"] = text + (f"\n{note}" if note else "")
    return bundle


class Figure(go.Figure):
    """A plotly ``go.Figure`` that a notebook run by papermill / nbconvert / nasviz saves as a
    report (plotly JSON + PNG, see the module docstring). Interactively it displays as any
    plotly figure does (plotly's renderers decide). Every nasviz figure builder returns one."""

    def _repr_mimebundle_(self, include=None, exclude=None, validate=True, **kwargs):
        if headless():
            return static_bundle(self)
        return super()._repr_mimebundle_(include, exclude, validate, **kwargs)

    def _ipython_display_(self):
        if headless():
            from IPython.display import display

            display(static_bundle(self), raw=True)
        else:
            super()._ipython_display_()


def as_figure(fig: go.Figure) -> Figure:
    """``fig`` as a nasviz :class:`Figure` (the same object when it already is one)."""
    return fig if isinstance(fig, Figure) else Figure(fig)


def styled(fig: go.Figure) -> Figure:
    """``fig`` (say a ``plotly.express`` figure) in nasviz's template, as a nasviz
    :class:`Figure` (saved as a report by a notebook runner)."""
    out = as_figure(fig)
    out.update_layout(template=TEMPLATE)
    return out
