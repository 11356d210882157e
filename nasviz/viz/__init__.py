"""Pure figure builders: data -> info -> plotly Figure.

No widgets here (plotly only), so every figure can be built and checked headless. Each figure
has an ``*_info`` function returning a small immutable record that tests assert on, and a
``*_figure`` function that draws it.
"""

from __future__ import annotations

__all__: list[str] = []
