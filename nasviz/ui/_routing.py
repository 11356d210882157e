"""RoutingHeatmap: look at mixture-of-experts routing and try dropping experts.

A plotly FigureWidget heatmap with views (layer x expert load, label x expert, one sequence's
experts per layer, and the load after a drop); clicking a load cell lists the tokens routed
there; the "drop experts" control re-routes the recorded tokens without the chosen experts
(from the recorded router probabilities, instantly) and shows that load in the heatmap; the
accuracy change of the pruned copy is computed only when its button is pressed.

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
from nasviz.moe import RoutingRecorder, RoutingStats, check_stats, drop_experts
from nasviz.ui._base import View
from nasviz.ui._figure import FigureSlot, PlotWidget
from nasviz.viz._compat import keyword_only_after
from nasviz.viz._routing import (
    routing_drop_info,
    routing_grid_figure,
    routing_label_info,
    routing_load_info,
    routing_sequence_info,
)

__all__ = ["RoutingHeatmap"]

_HEATMAP_KEYS = (
    "z",
    "x",
    "y",
    "text",
    "customdata",
    "texttemplate",
    "colorscale",
    "zmin",
    "zmax",
    "zauto",
    "hovertemplate",
    "colorbar",
)


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0)


def _error_html(exc: Exception) -> str:
    return f"<span style='color:#b00'>{html.escape(str(exc))}</span>"


class RoutingHeatmap(View):
    """Routing heatmaps of a recording, with click-to-list and a drop-experts control.

    Args:
        source: a RoutingStats, or a RoutingRecorder that finished recording.
        model: the recorded model (a nasviz MoE model; a :class:`~nasviz.errors.MoEError` if
            the stats come from another one); with ``data`` it enables the accuracy button of
            drops.
        data: a Dataset / Split / ``(X, y)`` for :func:`~nasviz.objectives.evaluate_accuracy`.
        max_listed: rows shown when a cell is clicked.
    """

    @keyword_only_after("data", "max_listed")
    def __init__(
        self,
        source: RoutingStats | RoutingRecorder,
        model: nn.Module | None = None,
        *,
        data: Any = None,
        max_listed: int = 20,
    ) -> None:
        if isinstance(source, RoutingRecorder):
            source = source.stats()
        if not isinstance(source, RoutingStats):
            raise MoEError(
                f"RoutingHeatmap needs a RoutingStats or RoutingRecorder, got {type(source).__name__}"
            )
        if model is not None:  # drops are scored on this model: it must be the recorded one
            check_stats(model, source)
        self.stats, self.model, self.data, self.max_listed = source, model, data, max_listed
        self.listed: pd.DataFrame | None = None
        self.last_drop: pd.DataFrame | None = None
        self._dropped: tuple[str, tuple[int, ...]] | None = None  # (layer, experts) last shown
        self._baseline_accuracy: float | None = None
        self._view = "load"
        views = [("layer x expert load", "load")]
        views += [(f"{name} x expert", f"label:{name}") for name in self.stats.labels]
        views += [("sequence", "sequence")]
        self.view_picker = w.Dropdown(options=views, value="load", description="view")
        self.example = w.BoundedIntText(
            value=0, min=0, max=max(self.stats.recording.num_examples - 1, 0), description="example"
        )
        # the figure widget is made when the view is first shown (see nasviz.ui._figure)
        self.slot = FigureSlot(self._new_figure)
        self.listing = w.HTML("<i>click a cell to list the tokens routed there</i>")
        self.drop_layer = w.Dropdown(options=self.stats.layers, description="layer")
        self.drop_select = w.SelectMultiple(options=[], description="drop", rows=4)
        self.drop_button = w.Button(description="drop experts", icon="scissors")
        can_score = model is not None and data is not None
        self.accuracy_button = w.Button(
            description="accuracy change",
            icon="calculator",
            disabled=True,
            tooltip="evaluate the pruned copy on the data"
            if can_score
            else "pass model= and data= to enable",
        )
        self.drop_result = w.HTML()
        self.drop_layer.observe(lambda _: self._refresh_drop_options(), names="value")
        self.drop_button.on_click(lambda _: self._on_drop())
        self.accuracy_button.on_click(lambda _: self._on_accuracy())
        self.view_picker.observe(lambda _: self.show(self.view_picker.value), names="value")
        self.example.observe(lambda _: self._example_changed(), names="value")
        self._refresh_drop_options()
        self.widget = w.VBox(
            [
                w.HBox([self.view_picker, self.example]),
                self.slot.box,
                self.listing,
                w.HBox([self.drop_layer, self.drop_select, self.drop_button, self.accuracy_button]),
                self.drop_result,
            ]
        )

    def __repr__(self) -> str:
        return f"RoutingHeatmap({self.stats!r})"

    @property
    def figure(self) -> go.FigureWidget:
        """The heatmap's figure widget (made on first use)."""
        return self.slot.figure

    def _new_figure(self) -> go.FigureWidget:
        fig = PlotWidget(routing_grid_figure(self.info()))
        fig.data[0].on_click(self._on_click)
        return fig

    def _materialize(self) -> None:
        self.slot.figure  # noqa: B018 - made when the view is first displayed

    # ---- views ---------------------------------------------------------------------------------
    def info(self, view: str | None = None) -> Any:
        """The :class:`~nasviz.viz.RoutingGridInfo` of a view (``"load"``, ``"label:<name>"``,
        ``"sequence"``, or ``"drop"`` after :meth:`drop`)."""
        view = self._view if view is None else view
        if view == "load":
            return routing_load_info(self.stats)
        if view == "sequence":
            return routing_sequence_info(self.stats, int(self.example.value))
        if view == "drop" and self._dropped is not None:
            return routing_drop_info(self.stats, *self._dropped)
        if view.startswith("label:"):
            return routing_label_info(self.stats, view.split(":", 1)[1])
        raise MoEError(
            f"view must be 'load', 'sequence', 'label:<name>' with a recorded label or, after a "
            f"drop, 'drop'; got {view!r}"
        )

    def show(self, view: str) -> None:
        """Switches the heatmap to ``view`` (every view sets its whole colour scale)."""
        fig = routing_grid_figure(self.info(view))
        self._view = view
        if not self.slot.created:  # drawn with this view when first shown
            if self.view_picker.value != view:
                self.view_picker.value = view
            return
        with self.figure.batch_update():
            heat = self.figure.data[0]
            for key in _HEATMAP_KEYS:
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
        """plotly click callback: in the load views a cell is (layer, expert)."""
        if not points.point_inds or self._view not in ("load", "drop"):
            return
        row, col = (
            points.point_inds[0]
            if isinstance(points.point_inds[0], tuple | list)
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

    def drop(self, layer: int | str, experts: list[int]) -> pd.DataFrame:
        """Shows (and returns) the load of ``layer`` with ``experts`` dropped, re-routed from the
        recorded router probabilities (:meth:`~nasviz.moe.RoutingStats.load_without`), in the
        heatmap (view ``"drop"``) and as a table. Cheap: no model is run."""
        result = self.stats.load_without(layer, experts)
        name = self.stats.recording.layer(layer).name
        self._dropped = (name, tuple(sorted({int(e) for e in experts})))
        self.last_drop = result
        if "drop" not in [v for _, v in self.view_picker.options]:
            self.view_picker.options = [*self.view_picker.options, ("after drop", "drop")]
        self.show("drop")
        self.accuracy_button.disabled = self.model is None or self.data is None
        self._render_drop()
        self._refresh_after_cell()
        return result

    def accuracy_change(self) -> pd.DataFrame:
        """Evaluates the model with the last :meth:`drop` applied (a pruned copy) and the model
        itself on the data; returns the drop table with ``accuracy_before``,
        ``accuracy_after`` and ``accuracy_change`` (percentage points) added."""
        if self._dropped is None:
            raise MoEError("drop experts first (drop() or the drop button), then ask for accuracy")
        if self.model is None or self.data is None:
            raise MoEError("the accuracy change needs RoutingHeatmap(stats, model=..., data=...)")
        from nasviz.objectives import evaluate_accuracy

        name, experts = self._dropped
        if self._baseline_accuracy is None:
            self._baseline_accuracy = evaluate_accuracy(self.model, self.data)
        after = evaluate_accuracy(drop_experts(self.model, {name: list(experts)}), self.data)
        self.last_drop = self.last_drop.assign(
            accuracy_before=self._baseline_accuracy,
            accuracy_after=after,
            accuracy_change=after - self._baseline_accuracy,
        )
        self._render_drop()
        self._refresh_after_cell()
        return self.last_drop

    def _render_drop(self) -> None:
        name, experts = self._dropped
        result = self.last_drop
        summary = (
            f"<b>{html.escape(name)} without experts {list(experts)}</b>: "
            f"{result['rerouted'].iloc[0]:.0%} of its tokens change first choice"
        )
        if "accuracy_change" in result:
            summary += (
                f"; accuracy {result['accuracy_after'].iloc[0]:.1f}% "
                f"({result['accuracy_change'].iloc[0]:+.1f} points)"
            )
        elif not self.accuracy_button.disabled:
            summary += "; press <i>accuracy change</i> to evaluate the pruned copy"
        self.drop_result.value = summary + _table_html(result)

    def _on_drop(self) -> None:
        chosen = list(self.drop_select.value)
        if not chosen:
            self.drop_result.value = "<i>pick experts to drop</i>"
            return
        try:
            self.drop(self.drop_layer.value, chosen)
        except MoEError as exc:
            self.drop_result.value = _error_html(exc)

    def _on_accuracy(self) -> None:
        self.accuracy_button.disabled = True
        self.drop_result.value += "<br><i>evaluating…</i>"
        try:
            self.accuracy_change()
        except Exception as exc:  # a failing evaluation is shown, never swallowed
            self.drop_result.value = _error_html(exc)
        finally:
            self.accuracy_button.disabled = False
