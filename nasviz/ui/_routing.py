"""RoutingHeatmap: look at mixture-of-experts routing and try dropping experts.

A plotly FigureWidget heatmap with three views (layer x expert load, label x expert, one
sequence's experts per layer); clicking a load cell lists the tokens routed there; a "drop
experts" control shows the re-routed load from the recorded router probabilities and, when a
model and data are given, the accuracy change of the pruned copy (computed on demand).

Threads: a RoutingHeatmap is driven from the kernel's main thread (widget callbacks); it only
reads its RoutingStats and never changes the model (drops are evaluated on copies).
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
from torch import nn

from nasviz.errors import MoEError
from nasviz.moe import RoutingRecorder, RoutingStats, drop_experts
from nasviz.ui._base import View
from nasviz.viz._routing import (
    routing_grid_figure,
    routing_label_info,
    routing_load_info,
    routing_sequence_info,
)

__all__ = ["RoutingHeatmap"]


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0)


class RoutingHeatmap(View):
    """Routing heatmaps of a recording, with click-to-list and a drop-experts control.

    Args:
        source: a RoutingStats, or a RoutingRecorder that finished recording.
        model: the recorded model; with ``data`` it enables the accuracy change of drops.
        data: a Dataset / Split / ``(X, y)`` for :func:`~nasviz.objectives.evaluate_accuracy`.
        max_listed: rows shown when a cell is clicked.
    """

    def __init__(
        self,
        source: RoutingStats | RoutingRecorder,
        model: nn.Module | None = None,
        data: Any = None,
        max_listed: int = 20,
    ) -> None:
        if isinstance(source, RoutingRecorder):
            source = source.stats()
        if not isinstance(source, RoutingStats):
            raise MoEError(
                f"RoutingHeatmap needs a RoutingStats or RoutingRecorder, got {type(source).__name__}"
            )
        self.stats, self.model, self.data, self.max_listed = source, model, data, max_listed
        self.listed: pd.DataFrame | None = None
        self.last_drop: pd.DataFrame | None = None
        self._baseline_accuracy: float | None = None
        views = [("layer x expert load", "load")]
        views += [(f"{name} x expert", f"label:{name}") for name in self.stats.labels]
        views += [("sequence", "sequence")]
        self.view_picker = w.Dropdown(options=views, value="load", description="view")
        self.example = w.BoundedIntText(
            value=0, min=0, max=max(self.stats.recording.num_examples - 1, 0), description="example"
        )
        self.figure = go.FigureWidget(routing_grid_figure(routing_load_info(self.stats)))
        self.figure.data[0].on_click(self._on_click)
        self.listing = w.HTML("<i>click a cell to list the tokens routed there</i>")
        self.drop_layer = w.Dropdown(options=self.stats.layers, description="layer")
        self.drop_select = w.SelectMultiple(options=[], description="drop", rows=4)
        self.drop_button = w.Button(description="drop experts", icon="scissors")
        self.drop_result = w.HTML()
        self.drop_layer.observe(lambda _: self._refresh_drop_options(), names="value")
        self.drop_button.on_click(lambda _: self._on_drop())
        self.view_picker.observe(lambda _: self.show(self.view_picker.value), names="value")
        self.example.observe(lambda _: self._example_changed(), names="value")
        self._refresh_drop_options()
        self.widget = w.VBox(
            [
                w.HBox([self.view_picker, self.example]),
                self.figure,
                self.listing,
                w.HBox([self.drop_layer, self.drop_select, self.drop_button]),
                self.drop_result,
            ]
        )
        self._view = "load"

    def __repr__(self) -> str:
        return f"RoutingHeatmap({self.stats!r})"

    # ---- views ---------------------------------------------------------------------------------
    def info(self, view: str | None = None) -> Any:
        """The :class:`~nasviz.viz.RoutingGridInfo` of a view (``"load"``, ``"label:<name>"``,
        ``"sequence"``)."""
        view = self._view if view is None else view
        if view == "load":
            return routing_load_info(self.stats)
        if view == "sequence":
            return routing_sequence_info(self.stats, int(self.example.value))
        if view.startswith("label:"):
            return routing_label_info(self.stats, view.split(":", 1)[1])
        raise MoEError(
            f"view must be 'load', 'sequence' or 'label:<name>' with a recorded label, got {view!r}"
        )

    def show(self, view: str) -> None:
        """Switches the heatmap to ``view``."""
        fig = routing_grid_figure(self.info(view))
        self._view = view
        with self.figure.batch_update():
            heat = self.figure.data[0]
            for key in (
                "z",
                "x",
                "y",
                "text",
                "customdata",
                "texttemplate",
                "colorscale",
                "zmin",
                "zmax",
                "hovertemplate",
                "colorbar",
            ):
                setattr(heat, key, getattr(fig.data[0], key))
            self.figure.layout.update(fig.layout)
        if self.view_picker.value != view:
            self.view_picker.value = view

    def _example_changed(self) -> None:
        if self._view == "sequence":
            self.show("sequence")

    def static_figure(self) -> go.Figure:
        return routing_grid_figure(self.info())

    # ---- click -> tokens -------------------------------------------------------------------------
    def select(self, layer: int | str, expert: int) -> pd.DataFrame:
        """Lists (and returns) the tokens routed to ``expert`` of ``layer``."""
        self.listed = self.stats.tokens(layer, expert, limit=self.max_listed)
        name = self.stats.recording.layer(layer).name
        total = int(self.stats.counts(layer)[expert])
        self.listing.value = (
            f"<b>{html.escape(name)}, expert {expert}</b>: {total} assignments, strongest "
            f"{len(self.listed)} shown{_table_html(self.listed)}"
        )
        return self.listed

    def _on_click(self, trace: Any, points: Any, state: Any = None) -> None:
        """plotly click callback: in the load view a cell is (layer, expert)."""
        if not points.point_inds or self._view != "load":
            return
        row, col = (
            points.point_inds[0]
            if isinstance(points.point_inds[0], (tuple, list))
            else (points.ys[0], points.xs[0])
        )
        layer = row if isinstance(row, int) else self.stats.layers.index(str(row))
        expert = col if isinstance(col, int) else int(str(col).split()[-1])
        if expert < self.stats.recording.layer(layer).num_experts:
            self.select(layer, expert)

    # ---- drop experts -------------------------------------------------------------------------------
    def _refresh_drop_options(self) -> None:
        n = self.stats.recording.layer(self.drop_layer.value).num_experts
        self.drop_select.options = [(f"expert {e}", e) for e in range(n)]

    def drop(self, layer: int | str, experts: list[int], accuracy: bool = True) -> pd.DataFrame:
        """Shows (and returns) the load of ``layer`` with ``experts`` dropped and, when the view
        has a model and data and ``accuracy`` is set, the accuracy change of that pruned copy
        (columns ``accuracy_before``, ``accuracy_after``, ``accuracy_change``)."""
        result = self.stats.load_without(layer, experts)
        name = self.stats.recording.layer(layer).name
        if accuracy and self.model is not None and self.data is not None:
            from nasviz.objectives import evaluate_accuracy

            if self._baseline_accuracy is None:
                self._baseline_accuracy = evaluate_accuracy(self.model, self.data)
            after = evaluate_accuracy(drop_experts(self.model, {name: list(experts)}), self.data)
            result = result.assign(
                accuracy_before=self._baseline_accuracy,
                accuracy_after=after,
                accuracy_change=after - self._baseline_accuracy,
            )
        self.last_drop = result
        summary = f"<b>{html.escape(name)} without experts {sorted(experts)}</b>"
        if "accuracy_change" in result:
            summary += f": accuracy {result['accuracy_after'].iloc[0]:.1f}% ({result['accuracy_change'].iloc[0]:+.1f})"
        self.drop_result.value = summary + _table_html(result)
        return result

    def _on_drop(self) -> None:
        chosen = list(self.drop_select.value)
        if not chosen:
            self.drop_result.value = "<i>pick experts to drop</i>"
            return
        try:
            self.drop(self.drop_layer.value, chosen)
        except MoEError as exc:
            self.drop_result.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
