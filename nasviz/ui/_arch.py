"""ArchView: one subnet drawn against its supernet's space."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as W

from nasviz.errors import ConfigError
from nasviz.space import SearchSpace
from nasviz.ui._base import View
from nasviz.viz._arch import arch_info, arch_svg
from nasviz.viz._compat import keyword_only_after

__all__ = ["ArchView"]


class ArchView(View):
    """Stages/layers of ``arch`` with depth, width / expand ratio / kernel (or heads, FFN,
    experts) per column, greyed where inactive.

    Drawn as an inline SVG in an HTML widget: crisp at any zoom, a few kilobytes, nothing to
    load in the browser (a plotly figure widget per clicked point would make the browser parse
    plotly's 5 MB front-end module each time). The static output is the same SVG
    (``image/svg+xml``: JupyterLab, nbconvert and GitHub show it). Layers a subnet skips are
    greyed and labelled "skipped".

    Args:
        arch: the architecture (a mapping; validated against the space).
        net_or_space: a supernet (its ``.space`` is used) or a SearchSpace.
        title: shown above the picture.
    """

    @keyword_only_after("title")
    def __init__(self, arch: Mapping[str, Any], net_or_space: Any, *, title: str = ""):
        space = (
            net_or_space
            if isinstance(net_or_space, SearchSpace)
            else getattr(net_or_space, "space", None)
        )
        if not isinstance(space, SearchSpace):
            raise ConfigError(
                f"ArchView needs a supernet or a SearchSpace, got {type(net_or_space).__name__}"
            )
        self.space = space
        self.net = net_or_space  # a QuantSupernet's bits are drawn as a strip below the arch
        self.title = title
        self.widget = W.HTML()
        self.show(arch)

    def show(self, arch: Mapping[str, Any], title: str | None = None) -> None:
        """Draws another arch of the same space in place."""
        self.arch = self.space.validate(arch)
        if title is not None:
            self.title = title
        from nasviz.viz._quant import arch_part

        self.info = arch_info(*arch_part(self.arch, self.space, self.net))
        self.widget.value = self.static_html()

    def static_html(self) -> str:
        """The picture as inline SVG markup (with the bit strip when the net quantizes)."""
        from nasviz.viz._quant import with_bit_strip

        return with_bit_strip(arch_svg(self.info, self.title), self.net, self.arch)

    def static_bundle(self, image: bool = True) -> dict[str, Any]:
        return {"image/svg+xml": self.static_html(), "text/plain": repr(self)}

    def __repr__(self) -> str:
        return f"ArchView({self.arch!r})"
