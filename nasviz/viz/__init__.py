"""Pure figure builders: data -> info -> plotly Figure.

No widgets here (plotly only), so every figure can be built and checked headless. Each figure
has an ``*_info`` function returning a small immutable record that tests assert on, and a
``*_figure`` function that draws it.
"""

from __future__ import annotations

from nasviz.viz._arch import ArchInfo, arch_info, arch_svg
from nasviz.viz._dashboard import dashboard_figure
from nasviz.viz._masks import (
    LayerSparsityInfo,
    MaskHeatmapInfo,
    layer_sparsity_figure,
    layer_sparsity_info,
    mask_heatmap_figure,
    mask_heatmap_info,
    masks_figure,
)
from nasviz.viz._pareto import (
    HypervolumeInfo,
    ParetoInfo,
    PredictorInfo,
    hypervolume_figure,
    hypervolume_info,
    pareto_figure,
    pareto_info,
    predictor_figure,
    predictor_info,
)
from nasviz.viz._routing import (
    RoutingGridInfo,
    compression_figure,
    routing_grid_figure,
    routing_label_info,
    routing_load_info,
    routing_sequence_info,
)
from nasviz.viz._training import LossInfo, accuracy_figure, loss_figure, loss_info

__all__ = [
    "ArchInfo",
    "HypervolumeInfo",
    "LayerSparsityInfo",
    "LossInfo",
    "MaskHeatmapInfo",
    "ParetoInfo",
    "PredictorInfo",
    "RoutingGridInfo",
    "accuracy_figure",
    "arch_info",
    "arch_svg",
    "compression_figure",
    "dashboard_figure",
    "hypervolume_figure",
    "hypervolume_info",
    "layer_sparsity_figure",
    "layer_sparsity_info",
    "loss_figure",
    "loss_info",
    "mask_heatmap_figure",
    "mask_heatmap_info",
    "masks_figure",
    "pareto_figure",
    "pareto_info",
    "predictor_figure",
    "predictor_info",
    "routing_grid_figure",
    "routing_label_info",
    "routing_load_info",
    "routing_sequence_info",
]
