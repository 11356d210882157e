"""ImportanceView: look at head, neuron and layer importance and try pruning plans.

A plotly FigureWidget shows one view of an :class:`~nasviz.prune.Importance` (layer x head
heatmap, block influence per layer, sorted neuron scores); three sliders (head sparsity, neuron
sparsity, layers to drop) and a "uniform" box build a :class:`~nasviz.prune.StructurePlan` live
and mark what it would remove, with the per-layer summary under the figure. The view never
prunes: ``view.plan.apply(model)`` does, when the user decides.

Threads: driven from the kernel's main thread (widget callbacks); it only reads its Importance
and the scored model.
"""

from __future__ import annotations

import contextlib
import html
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go

from nasviz.errors import ConfigError, NasvizError
from nasviz.prune import Importance, StructurePlan
from nasviz.ui._base import View
from nasviz.viz import _importance as figures

__all__ = ["ImportanceView"]

VIEWS = ("heads", "layers", "neurons")


class ImportanceView(View):
    """Importance heatmaps with live pruning plans.

    Args:
        importance: what :meth:`Importance.for_data` computed.
        view: ``"heads"``, ``"layers"`` or ``"neurons"``.
        head_sparsity, neuron_sparsity, drop_layers, uniform: the first plan (see
            :meth:`Importance.plan`).

    A plan the model cannot take (e.g. heads of OLMoE) is reported under the sliders and the
    previous plan stays.
    """

    def __init__(
        self,
        importance: Importance,
        *,
        view: str = "heads",
        head_sparsity: float = 0.0,
        neuron_sparsity: float = 0.0,
        drop_layers: int = 0,
        uniform: bool = True,
    ) -> None:
        if not isinstance(importance, Importance):
            raise ConfigError(
                f"ImportanceView shows an Importance, got {type(importance).__name__}"
            )
        if view not in VIEWS:
            raise ConfigError(f"view must be one of {VIEWS}, got {view!r}")
        self.importance = importance
        self.plan = importance.plan(
            head_sparsity=head_sparsity,
            neuron_sparsity=neuron_sparsity,
            drop_layers=drop_layers,
            uniform=uniform,
        )
        self._view = view
        n_layers = len(importance.layers)
        self.view_picker = w.ToggleButtons(options=list(VIEWS), value=view, description="view")
        self.head_slider = w.FloatSlider(
            value=head_sparsity, min=0.0, max=0.9, step=0.05, description="heads"
        )
        self.neuron_slider = w.FloatSlider(
            value=neuron_sparsity, min=0.0, max=0.9, step=0.05, description="neurons"
        )
        self.layer_slider = w.IntSlider(
            value=drop_layers, min=0, max=max(n_layers - 1, 0), description="drop layers"
        )
        self.uniform_box = w.Checkbox(value=uniform, description="one size per layer (saveable)")
        self.message = w.HTML()
        self.summary = w.HTML()
        self.figure = go.FigureWidget(self._figure())
        for control in (self.head_slider, self.neuron_slider, self.layer_slider, self.uniform_box):
            control.observe(lambda _: self._replan(), names="value")
        self.view_picker.observe(lambda _: self.show(self.view_picker.value), names="value")
        self._render_summary()
        self.widget = w.VBox(
            [
                self.view_picker,
                self.figure,
                w.HBox([self.head_slider, self.neuron_slider]),
                w.HBox([self.layer_slider, self.uniform_box]),
                self.message,
                self.summary,
            ]
        )

    def __repr__(self) -> str:
        return f"ImportanceView({self.importance!r}, view={self._view!r})"

    def info(self, view: str | None = None) -> Any:
        """The info record of a view (with the current plan's removals)."""
        view = self._view if view is None else view
        builders = {
            "heads": figures.head_importance_info,
            "layers": figures.layer_importance_info,
            "neurons": figures.neuron_importance_info,
        }
        if view not in builders:
            raise ConfigError(f"view must be one of {VIEWS}, got {view!r}")
        return builders[view](self.importance, self.plan)

    def _figure(self) -> go.Figure:
        draw = {
            "heads": figures.head_importance_figure,
            "layers": figures.layer_importance_figure,
            "neurons": figures.neuron_importance_figure,
        }[self._view]
        return draw(self.info())

    def show(self, view: str) -> None:
        """Switches the figure to ``view``."""
        if view not in VIEWS:
            raise ConfigError(f"view must be one of {VIEWS}, got {view!r}")
        self._view = view
        fig = self._figure()
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.add_traces(list(fig.data))
            self.figure.layout = fig.layout
        if self.view_picker.value != view:
            self.view_picker.value = view

    def set_plan(
        self,
        *,
        head_sparsity: float,
        neuron_sparsity: float,
        drop_layers: int,
        uniform: bool = True,
    ) -> StructurePlan:
        """Builds the plan (as the sliders do), shows it and returns it; on a NasvizError the
        message is shown, the previous plan stays and the error is raised."""
        try:
            plan = self.importance.plan(
                head_sparsity=head_sparsity,
                neuron_sparsity=neuron_sparsity,
                drop_layers=drop_layers,
                uniform=uniform,
            )
        except NasvizError as exc:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            raise
        self.plan = plan
        self.message.value = ""
        self.show(self._view)
        self._render_summary()
        self._refresh_after_cell()
        return plan

    def _replan(self) -> None:
        with contextlib.suppress(NasvizError):  # shown in self.message; the previous plan stays
            self.set_plan(
                head_sparsity=self.head_slider.value,
                neuron_sparsity=self.neuron_slider.value,
                drop_layers=self.layer_slider.value,
                uniform=self.uniform_box.value,
            )

    def _render_summary(self) -> None:
        table = self.plan.summary(self.importance.model)
        self.summary.value = table.to_html(index=False, border=0)

    def static_figure(self) -> go.Figure:
        return figures.importance_figure(self.importance, self.plan)
