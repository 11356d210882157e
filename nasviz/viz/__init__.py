"""Pure figure builders: data -> info -> plotly Figure.

No widgets here (plotly only), so every figure can be built and checked headless. One call
draws a figure from the data, as optuna's ``plot_*`` functions do:
``pareto_figure(search.results, search.objectives)``. Inside, an ``*_info`` function computes a
small immutable record that tests assert on, and a ``*_plot`` function draws it.

Every figure uses one plotly template (registered as ``"nasviz"``; use it for your own figures,
e.g. ``px.line(..., template="nasviz")``, or :func:`styled`), writes numbers with units and SI
prefixes (:func:`format_value`: ``19.7k MACs``, ``97.1%``), and is a :class:`Figure`: in a
notebook run by papermill, nbconvert or ``nasviz run`` it is saved as a report (plotly JSON plus
a PNG), readable without a kernel, offline, in JupyterLab and in nbconvert's HTML.
"""

from __future__ import annotations

from nasviz.viz._arch import ArchInfo, arch_info, arch_svg
from nasviz.viz._dashboard import dashboard_figure
from nasviz.viz._format import axis_title, format_frame, format_value, si
from nasviz.viz._hardware import LatencyCheckInfo, latency_check_figure, latency_check_info
from nasviz.viz._hypervolume import (
    HypervolumeInfo,
    hypervolume_figure,
    hypervolume_info,
    hypervolume_plot,
    reference_box,
)
from nasviz.viz._importance import (
    HeadImportanceInfo,
    LayerImportanceInfo,
    NeuronImportanceInfo,
    head_importance_figure,
    head_importance_info,
    importance_figure,
    layer_importance_figure,
    layer_importance_info,
    neuron_importance_figure,
    neuron_importance_info,
)
from nasviz.viz._masks import (
    LayerSparsityInfo,
    MaskHeatmapInfo,
    layer_sparsity_figure,
    layer_sparsity_info,
    layer_sparsity_plot,
    mask_heatmap_figure,
    mask_heatmap_info,
    mask_heatmap_plot,
    masks_figure,
)
from nasviz.viz._pareto import ParetoInfo, pareto_figure, pareto_info, pareto_plot
from nasviz.viz._predictor import PredictorInfo, predictor_figure, predictor_info, predictor_plot
from nasviz.viz._quant import (
    BitStripInfo,
    SensitivityInfo,
    bit_strip_figure,
    bit_strip_info,
    bit_strip_svg,
    sensitivity_figure,
    sensitivity_info,
)
from nasviz.viz._routing import (
    RoutingGridInfo,
    routing_grid_figure,
    routing_label_info,
    routing_load_info,
    routing_sequence_info,
)
from nasviz.viz._static import Figure, styled
from nasviz.viz._training import LossInfo, accuracy_figure, loss_figure, loss_info, loss_plot
from nasviz.viz._variants import CompressionInfo, compression_figure, compression_info

__all__ = [
    "ArchInfo",
    "BitStripInfo",
    "CompressionInfo",
    "Figure",
    "HeadImportanceInfo",
    "HypervolumeInfo",
    "LatencyCheckInfo",
    "LayerImportanceInfo",
    "LayerSparsityInfo",
    "LossInfo",
    "MaskHeatmapInfo",
    "NeuronImportanceInfo",
    "ParetoInfo",
    "PredictorInfo",
    "RoutingGridInfo",
    "SensitivityInfo",
    "accuracy_figure",
    "arch_info",
    "arch_svg",
    "axis_title",
    "bit_strip_figure",
    "bit_strip_info",
    "bit_strip_svg",
    "compression_figure",
    "compression_info",
    "dashboard_figure",
    "format_frame",
    "format_value",
    "head_importance_figure",
    "head_importance_info",
    "hypervolume_figure",
    "hypervolume_info",
    "hypervolume_plot",
    "importance_figure",
    "latency_check_figure",
    "latency_check_info",
    "layer_importance_figure",
    "layer_importance_info",
    "layer_sparsity_figure",
    "layer_sparsity_info",
    "layer_sparsity_plot",
    "loss_figure",
    "loss_info",
    "loss_plot",
    "mask_heatmap_figure",
    "mask_heatmap_info",
    "mask_heatmap_plot",
    "masks_figure",
    "neuron_importance_figure",
    "neuron_importance_info",
    "pareto_figure",
    "pareto_info",
    "pareto_plot",
    "predictor_figure",
    "predictor_info",
    "predictor_plot",
    "reference_box",
    "routing_grid_figure",
    "routing_label_info",
    "routing_load_info",
    "routing_sequence_info",
    "sensitivity_figure",
    "sensitivity_info",
    "si",
    "styled",
]
