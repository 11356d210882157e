"""The search dashboard's single figure: the Pareto scatter, the hypervolume curve and, for the
predictor strategy, the predictor panel, as subplots of one plotly figure.

One figure rather than three: every plotly FigureWidget makes the browser parse plotly's 5 MB
front-end module once more (see :mod:`nasviz.ui._figure`), so a live view uses as few as it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nasviz.objectives import Objective
from nasviz.viz._pareto import (
    HYPERVOLUME_STYLE,
    _axis_title,
    add_pareto,
    hypervolume_info,
    hypervolume_title,
    info_title,
    pareto_info,
    predictor_info,
    predictor_traces,
)

__all__ = [
    "HYPERVOLUME_AXES",
    "PARETO_AXES",
    "PREDICTOR_AXES",
    "dashboard_figure",
    "dashboard_layout",
]

PARETO_AXES = ("x", "y")
HYPERVOLUME_AXES = ("x2", "y2")
PREDICTOR_AXES = (("x3", "y3"), ("x4", "y4"))
HYPERVOLUME_TITLE = "hypervolume-title"


def _title(text: str, axes: tuple[str, str]) -> dict[str, Any]:
    return {
        "name": HYPERVOLUME_TITLE if axes == HYPERVOLUME_AXES else "title",
        "text": text,
        "xref": f"{axes[0]} domain",
        "yref": f"{axes[1]} domain",
        "x": 0.0,
        "y": 1.0,
        "xanchor": "left",
        "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": 14},
    }


def dashboard_layout(
    x: str,
    y: str,
    color: str | None,
    directions: dict[str, str],
    predictor: bool = False,
) -> go.Figure:
    """An empty dashboard figure: subplots, axis titles, the colour axis beside the scatter and
    the subplot titles (the hypervolume one is the annotation named ``hypervolume-title``)."""
    rows = 3 if predictor else 2
    specs: list[list[dict[str, Any] | None]] = [[{"colspan": 2}, None], [{"colspan": 2}, None]]
    if predictor:
        specs.append([{}, {}])
    fig = make_subplots(
        rows=rows,
        cols=2,
        specs=specs,
        row_heights=[0.5, 0.25, 0.25] if predictor else [0.64, 0.36],
        vertical_spacing=0.09 if predictor else 0.13,
        horizontal_spacing=0.12,
    )
    fig.update_layout(
        template="plotly_white",
        height=980 if predictor else 720,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "x": 0.0, "y": 1.0, "yanchor": "bottom", "xanchor": "left"},
        title={"y": 0.995, "yanchor": "top"},
    )
    fig.layout.xaxis.title.text = _axis_title(x, directions)
    fig.layout.yaxis.title.text = _axis_title(y, directions)
    fig.layout.xaxis2.title.text = "evaluations"
    fig.layout.yaxis2.title.text = "hypervolume"
    fig.add_annotation(_title(hypervolume_title(None), HYPERVOLUME_AXES))
    if predictor:
        fig.layout.xaxis3.title.text = "cycle"
        fig.layout.yaxis3.update(title_text="Kendall tau", range=[-1, 1])
        fig.layout.xaxis4.title.text = "measured"
        fig.layout.yaxis4.title.text = "predicted"
        fig.add_annotation(_title("Kendall tau per cycle", PREDICTOR_AXES[0]))
        fig.add_annotation(_title("predicted vs measured (held out)", PREDICTOR_AXES[1]))
    if color is not None:
        lo, hi = fig.layout.yaxis.domain
        fig.update_layout(
            coloraxis={
                "colorscale": "Viridis",
                "colorbar": {"title": color, "y": (lo + hi) / 2, "len": hi - lo},
            }
        )
    return fig


def dashboard_figure(
    results: pd.DataFrame,
    objectives: Sequence[Objective | tuple[str, str]],
    x: str | None = None,
    y: str | None = None,
    color: str | None = None,
    reference: Sequence[float] | None = None,
    cycles: pd.DataFrame | None = None,
    title: str = "Pareto front",
) -> go.Figure:
    """The whole dashboard as a static figure (what a saved or papermill notebook shows):
    the Pareto scatter, the hypervolume curve and, with ``cycles``, the predictor panel."""
    info = pareto_info(results, objectives, x, y, color)
    hv = hypervolume_info(results, objectives, reference)
    fig = dashboard_layout(info.x, info.y, info.color, info.directions, cycles is not None)
    add_pareto(fig, info, PARETO_AXES)
    fig.add_scatter(
        **HYPERVOLUME_STYLE,
        xaxis=HYPERVOLUME_AXES[0],
        yaxis=HYPERVOLUME_AXES[1],
        x=hv.evaluations,
        y=hv.hypervolume,
        showlegend=False,
    )
    fig.update_annotations(
        selector={"name": HYPERVOLUME_TITLE}, text=hypervolume_title(hv.reference)
    )
    if cycles is not None:
        for trace, col in predictor_traces(predictor_info(cycles)):
            axes = PREDICTOR_AXES[col - 1]
            fig.add_scatter(**trace, xaxis=axes[0], yaxis=axes[1])
    fig.update_layout(title_text=info_title(info, title), clickmode="event+select")
    return fig
