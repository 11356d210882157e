"""Weight-sharing supernets: elastic layers, three ready supernets, training and exact export.

Every supernet follows one protocol: ``.space`` (a :class:`~nasviz.SearchSpace`),
``with net.subnet(arch): net(x)`` (per thread), ``net.export(arch)`` (plain torch modules),
``net.count_params(arch)``, ``net.count_macs(arch, input_shape)`` (closed form),
``net.canonical(arch)`` (one representative per distinct subnet), ``net.reorder_channels()``,
``largest()``/``smallest()``/``sample()``, ``net.config`` and ``net.save(path)`` /
``Supernet.load(path)`` / ``net.load_weights(path)`` (the one way to save and load one;
``save_subnet`` / ``load_subnet`` keep one exported subnet); for latency
tables ``net.block_space()``, ``net.block_choices(arch)``, ``net.export_block(name, choice)``
and ``net.block_input_shape(name, choice, input_shape)`` (see :mod:`nasviz.supernet._blocks`).
:func:`train_supernet` trains one in the background with the sandwich rule.
:func:`convert` makes a user's own PyTorch model a supernet of the same protocol.
"""

from __future__ import annotations

from nasviz._compat import deprecated_function
from nasviz.supernet import _checkpoint
from nasviz.supernet._attention import ElasticAttention, StaticAttention
from nasviz.supernet._base import ForwardState, Supernet, register_supernet
from nasviz.supernet._blocks import FIXED, Block
from nasviz.supernet._checkpoint import FAMILIES, load_subnet, save_subnet
from nasviz.supernet._cnn import CNNConfig, ElasticCNN, InvertedResidual
from nasviz.supernet._convert import ConvertConfig, ConvertedSupernet, convert
from nasviz.supernet._mlp import ElasticMLP, MLPConfig
from nasviz.supernet._ops import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLayerNorm,
    ElasticLinear,
    export_bn,
    export_conv,
    export_linear,
    importance_order,
    permute_bn,
    permute_rows,
)
from nasviz.supernet._recalibrate import recalibrate
from nasviz.supernet._train import SupernetTrainer, TrainingRun, train_supernet
from nasviz.supernet._transformer import ElasticTransformer, StaticTransformer, TransformerConfig

# one public way to save and load a supernet: its methods (net.save, Supernet.load,
# net.load_weights); the functions of the previous release warn
save_supernet = deprecated_function(_checkpoint.save_supernet, "save_supernet", "net.save(path)")
"""Deprecated: use ``net.save(path)``."""
load_supernet = deprecated_function(
    _checkpoint.load_supernet,
    "load_supernet",
    "Supernet.load(path) (or ElasticCNN.load(path), ...)",
)
"""Deprecated: use ``Supernet.load(path)`` (any family) or ``ElasticCNN.load(path)`` (one)."""
load_weights = deprecated_function(
    _checkpoint.load_weights, "load_weights", "net.load_weights(path)"
)
"""Deprecated: use ``net.load_weights(path)``."""

__all__ = [
    "FAMILIES",
    "FIXED",
    "Block",
    "CNNConfig",
    "ConvertConfig",
    "ConvertedSupernet",
    "ElasticAttention",
    "ElasticBatchNorm2d",
    "ElasticCNN",
    "ElasticConv2d",
    "ElasticLayerNorm",
    "ElasticLinear",
    "ElasticMLP",
    "ElasticTransformer",
    "ForwardState",
    "InvertedResidual",
    "MLPConfig",
    "StaticAttention",
    "StaticTransformer",
    "Supernet",
    "SupernetTrainer",
    "TrainingRun",
    "TransformerConfig",
    "convert",
    "export_bn",
    "export_conv",
    "export_linear",
    "importance_order",
    "load_subnet",
    "load_supernet",
    "load_weights",
    "permute_bn",
    "permute_rows",
    "recalibrate",
    "register_supernet",
    "save_subnet",
    "save_supernet",
    "train_supernet",
]
