"""The search dashboard's single figure: the Pareto scatter, the hypervolume curve and, for the
predictor strategy, the predictor panel, as subplots of one plotly figure.

One figure rather than three: every plotly FigureWidget makes the browser parse plotly's 5 MB
front-end module once more (see :mod:`nasviz.ui._figure`), so a live view uses as few as it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from plotly.subplots import make_subplots

from nasviz.objectives import Objective
from nasviz.viz._format import axis_format, axis_title
from nasviz.viz._hypervolume import (
    hover_template,
    hypervolume_info,
    hypervolume_title,
    raw_labels,
)
from nasviz.viz._pareto import (
    add_pareto,
    arch_columns,
    info_title,
    objective_specs,
    pareto_info,
    set_axis,
    stopped_hover,
    stopped_rows,
)
from nasviz.viz._predictor import predictor_info, predictor_placeholder, predictor_traces
from nasviz.viz._static import Figure
from nasviz.viz._style import HYPERVOLUME_STYLE, stopped_style

__all__ = [
    "HYPERVOLUME_AXES",
    "HYPERVOLUME_TITLE",
    "PARETO_AXES",
    "PREDICTOR_AXES",
    "PREDICTOR_NOTE",
    "dashboard_figure",
    "dashboard_layout",
]

PARETO_AXES = ("x", "y")
HYPERVOLUME_AXES = ("x2", "y2")
PREDICTOR_AXES = (("x3", "y3"), ("x4", "y4"))
HYPERVOLUME_TITLE = "hypervolume-title"
PREDICTOR_NOTE = "predictor-note"


def _title(text: str, axes: tuple[str, str], name: str = "title") -> dict[str, Any]:
    return {
        "name": name,
        "text": text,
        "xref": f"{axes[0]} domain",
        "yref": f"{axes[1]} domain",
        "x": 0.0,
        "y": 1.0,
        "xanchor": "left",
        "yanchor": "bottom",
        "yshift": 4,
        "showarrow": False,
        "font": {"size": 13},
    }


def _note(text: str, axes: tuple[str, str]) -> dict[str, Any]:
    return {
        "name": PREDICTOR_NOTE,
        "text": text,
        "xref": f"{axes[0]} domain",
        "yref": f"{axes[1]} domain",
        "x": 0.5,
        "y": 0.5,
        "showarrow": False,
        "font": {"color": "#888"},
    }


def dashboard_layout(
    x: str,
    y: str,
    color: str | None,
    directions: dict[str, str],
    predictor: bool = False,
    measured: str | None = None,
) -> Figure:
    """An empty dashboard figure: subplots, axis titles (with units), the colour axis beside the
    scatter and the subplot titles (the hypervolume one is the annotation named
    ``hypervolume-title``); for the predictor strategy a third row whose panels say what they
    will show until the first cycle (annotations named ``predictor-note``)."""
    rows = 3 if predictor else 2
    specs: list[list[dict[str, Any] | None]] = [[{"colspan": 2}, None], [{"colspan": 2}, None]]
    if predictor:
        specs.append([{}, {}])
    # row heights in pixels: the scatter 430, the curve 200, the predictor panel 230; the gaps
    # leave room for an x axis title and the next subplot's title
    fig = Figure(
        make_subplots(
            rows=rows,
            cols=2,
            specs=specs,
            row_heights=[0.49, 0.23, 0.28] if predictor else [0.66, 0.34],
            vertical_spacing=0.1 if predictor else 0.14,
            horizontal_spacing=0.14,
        )
    )
    fig.update_layout(
        template="nasviz",
        height=1080 if predictor else 740,
        margin={"l": 70, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "x": 0.0, "y": 1.0, "yanchor": "bottom", "xanchor": "left"},
        title={"y": 0.995, "yanchor": "top"},
        clickmode="event",
    )
    set_axis(fig, PARETO_AXES[0], x, directions[x])
    set_axis(fig, PARETO_AXES[1], y, directions[y])
    fig.layout.xaxis2.title.text = "evaluations"
    fig.layout.yaxis2.update(title_text="share of the box", range=[0, 1.02])
    fig.add_annotation(_title(hypervolume_title(None), HYPERVOLUME_AXES, HYPERVOLUME_TITLE))
    if predictor:
        fig.layout.xaxis3.title.text = "cycle"
        fig.layout.yaxis3.update(title_text="Kendall tau", range=[-1.05, 1.05])
        what = axis_title(measured) if measured else "value"
        fig.layout.xaxis4.update(title_text=f"measured {what}", **axis_format(measured or ""))
        fig.layout.yaxis4.update(title_text=f"predicted {what}", **axis_format(measured or ""))
        fig.add_annotation(_title("Kendall tau per cycle", PREDICTOR_AXES[0]))
        fig.add_annotation(_title("predicted vs measured (held out)", PREDICTOR_AXES[1]))
        note = predictor_placeholder(predictor_info(None))
        for axes in PREDICTOR_AXES:
            fig.add_annotation(_note(note or "", axes))
    if color is not None:
        lo, hi = fig.layout.yaxis.domain
        fig.update_layout(
            coloraxis={
                "colorscale": "Viridis",
                "colorbar": {
                    "title": {"text": axis_title(color)},
                    "y": (lo + hi) / 2,
                    "len": hi - lo,
                    **axis_format(color),
                },
            }
        )
    return fig


def predicted_name(cycles: pd.DataFrame | None) -> str | None:
    """The objective the predictor predicts (from the cycles table's columns), if known."""
    if cycles is None:
        return None
    return next(
        (c[: -len("_kendall_tau")] for c in cycles.columns if c.endswith("_kendall_tau")), None
    )


def dashboard_figure(
    results: pd.DataFrame,
    objectives: Sequence[Objective | tuple[str, str]],
    *,
    x: str | None = None,
    y: str | None = None,
    color: str | None = None,
    reference: Sequence[float] | None = None,
    ideal: Sequence[float] | None = None,
    cycles: pd.DataFrame | None = None,
    title: str = "Pareto front",
    note: str = "",
) -> Figure:
    """The whole dashboard as a static figure (what a saved or papermill notebook shows):
    the Pareto scatter, the hypervolume curve (share of the reference box) and, with
    ``cycles``, the predictor panel. ``note`` goes under the title (why the run ended, say)."""
    specs = objective_specs(objectives)
    info = pareto_info(results, specs, x=x, y=y, color=color)
    hv = hypervolume_info(results, specs, reference, ideal=ideal)
    predictor = cycles is not None
    fig = dashboard_layout(
        info.x, info.y, info.color, info.directions, predictor, predicted_name(cycles)
    )
    add_pareto(fig, info, PARETO_AXES)
    fig.add_scatter(
        **HYPERVOLUME_STYLE,
        xaxis=HYPERVOLUME_AXES[0],
        yaxis=HYPERVOLUME_AXES[1],
        x=hv.evaluations,
        y=hv.normalized,
        customdata=raw_labels(hv.hypervolume),
        hovertemplate=hover_template(),
        showlegend=False,
    )
    fig.update_annotations(
        selector={"name": HYPERVOLUME_TITLE},
        text=hypervolume_title(hv.reference, [o.name for o in specs]),
    )
    if predictor:
        pinfo = predictor_info(cycles)
        for trace, col in predictor_traces(pinfo):
            axes = PREDICTOR_AXES[col - 1]
            fig.add_scatter(**trace, xaxis=axes[0], yaxis=axes[1])
        fig.update_annotations(
            selector={"name": PREDICTOR_NOTE}, visible=predictor_placeholder(pinfo) is not None
        )
    stopped = stopped_rows(results, [o.name for o in specs])
    if len(stopped):
        arch_cols = arch_columns(results, specs)
        fig.add_scatter(
            **stopped_style(),
            xaxis=PARETO_AXES[0],
            yaxis=PARETO_AXES[1],
            x=stopped[info.x],
            y=stopped[info.y],
            customdata=stopped["trial"],
            hovertext=[stopped_hover(r, arch_cols, specs) for _, r in stopped.iterrows()],
        )
    text = info_title(info, title, len(stopped)) + (f"<br><sup>{note}</sup>" if note else "")
    fig.update_layout(title_text=text)
    return fig
