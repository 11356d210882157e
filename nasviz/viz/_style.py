"""How every nasviz figure looks: one plotly template, the colours, and the trace styles the
static figures and the live widgets share (so a saved notebook and a live view draw alike).

The template is registered with plotly as ``"nasviz"`` (registering adds a name; plotly's default
template is left alone), so ``plotly.express`` figures can use it too:
``px.line(..., template="nasviz")``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

__all__ = [
    "BEST",
    "DOMINATED",
    "FAILED",
    "FRONT",
    "HYPERVOLUME_STYLE",
    "TEMPLATE",
    "VARIANT",
    "failed_note",
    "front_style",
    "infeasible_style",
    "point_style",
    "star_style",
]

FRONT = "#d62728"
DOMINATED = "#1f77b4"
FAILED = "#7f7f7f"
BEST = "#ff7f0e"
VARIANT = "#2ca02c"
#: Failed evaluations listed in the hover text of the "failed" note (the latest ones).
ERRORS_LISTED = 12

_AXIS = {
    "showline": True,
    "linecolor": "#bbb",
    "gridcolor": "#eee",
    "zeroline": False,
    "ticks": "outside",
    "tickcolor": "#bbb",
    "exponentformat": "SI",
    "automargin": True,
    "title": {"standoff": 8},
}

TEMPLATE = go.layout.Template(pio.templates["plotly_white"])
TEMPLATE.layout.update(
    font={"family": "Helvetica, Arial, sans-serif", "size": 12, "color": "#222"},
    title={"font": {"size": 15}, "x": 0.0, "xanchor": "left", "xref": "paper"},
    xaxis=_AXIS,
    yaxis=_AXIS,
    hoverlabel={"bgcolor": "white", "font": {"size": 12}},
    legend={"bgcolor": "rgba(255,255,255,0.8)"},
    margin={"l": 60, "r": 20, "t": 50, "b": 50},
)
pio.templates["nasviz"] = TEMPLATE


# ---- trace styles ------------------------------------------------------------------------------
def point_style(color: str | None = None) -> dict[str, Any]:
    """Evaluated (dominated) points: faded; coloured through the ``coloraxis`` when ``color``."""
    marker: dict[str, Any] = {"color": DOMINATED, "opacity": 0.35, "size": 7}
    if color is not None:
        marker = {"coloraxis": "coloraxis", "opacity": 0.5, "size": 7}
    return {"mode": "markers", "name": "evaluated", "marker": marker, "hoverinfo": "text"}


def front_style(x_direction: str) -> dict[str, Any]:
    """The front: highlighted markers joined by a staircase along x."""
    return {
        "mode": "lines+markers",
        "name": "Pareto front",
        "hoverinfo": "text",
        "line": {"color": FRONT, "shape": "hv" if x_direction == "minimize" else "vh"},
        "marker": {"color": FRONT, "size": 10, "line": {"color": "white", "width": 1}},
    }


def infeasible_style() -> dict[str, Any]:
    """Completed archs outside the search's constraints: grey crosses, never on the front."""
    return {
        "mode": "markers",
        "name": "infeasible (constraints)",
        "hoverinfo": "text",
        "marker": {"symbol": "x-thin", "size": 8, "line": {"color": FAILED, "width": 1.5}},
    }


def stopped_style() -> dict[str, Any]:
    """Trials early stopping ended (successive halving, Hyperband, an Optuna pruner): hollow
    grey circles at their last reported values; never on the front."""
    return {
        "mode": "markers",
        "name": "stopped early",
        "hoverinfo": "text",
        "marker": {"symbol": "circle-open", "size": 7, "color": FAILED, "line": {"width": 1}},
    }


def star_style() -> dict[str, Any]:
    """The explorer's star on the best arch within budget: never dimmed by a selection."""
    marker = {"symbol": "star", "size": 18, "color": BEST, "line": {"color": "black", "width": 1}}
    return {
        "mode": "markers",
        "name": "best within budget",
        "hoverinfo": "skip",
        "marker": marker,
        "selected": {"marker": {"opacity": 1.0}},
        "unselected": {"marker": {"opacity": 1.0}},
    }


HYPERVOLUME_STYLE = {
    "mode": "lines",
    "name": "hypervolume",
    "line": {"color": FRONT, "shape": "hv"},
}


def failed_note(errors: Sequence[str], xref: str = "x", yref: str = "y") -> dict[str, Any]:
    """An annotation in the scatter's top-right corner counting failed evaluations (they have
    no objective values to plot); hovering it lists the latest errors. Hidden when none."""
    shown = [html.escape(e) for e in list(errors)[-ERRORS_LISTED:]]
    more = len(errors) - len(shown)
    hover = "<br>".join(([f"... {more} more"] if more else []) + shown)
    return {
        "name": "failed",
        "text": f"✕ {len(errors)} failed",
        "visible": bool(len(errors)),
        "hovertext": hover or None,
        "xref": f"{xref} domain",
        "yref": f"{yref} domain",
        "x": 1.0,
        "y": 1.0,
        "xanchor": "right",
        "yanchor": "top",
        "showarrow": False,
        "font": {"color": FAILED, "size": 13},
        "bgcolor": "rgba(255,255,255,0.85)",
        "bordercolor": FAILED,
        "borderwidth": 1,
    }
