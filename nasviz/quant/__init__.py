"""Quantization: post-training quantization, fake quantization, bit-width search dimensions,
exact model bytes, per-layer sensitivity and mixed-precision experts (MC-MoE).

* :func:`quantize` — a quantized copy of any model: weight-only per-channel 2/3/4/8 bits
  (simulated kernels, real storage), dynamic int8 for Linear layers and static int8 for conv
  nets (real fbgemm kernels); :func:`describe` lists layers with their bits and kernel.
* :func:`int8_speedups` — each Linear layer timed in fp32 and dynamic int8 on an example input:
  which layers to quantize for speed at the deployment's batch size.
* :func:`prepare_qat` / :func:`convert` — fake quantization with a straight-through estimator
  (:class:`FakeQuantize`) that a training loop trains through, then stored codes.
* :func:`qat` — quantization-aware fine-tuning of a copy as a background run on the training
  layer (:class:`QATRun`; optionally distilled from the full-precision model).
* :func:`quant_space` / :class:`QuantSupernet` — bits per layer or block as search dimensions
  that join a supernet's space, so one Search proposes architecture and bits together.
* :func:`count_bytes` / :func:`model_bytes` — exact size: bits x weights + scales + zero points.
* :func:`sensitivity` — the accuracy drop of quantizing one layer at a time.
* :func:`expert_importance`, :func:`allocate_expert_bits`, :func:`quantize_experts` — MC-MoE:
  bits per expert from routing statistics under a memory budget (``scipy.optimize.milp``).
"""

from __future__ import annotations

from nasviz.quant._bytes import count_bytes, model_bytes
from nasviz.quant._experts import allocate_expert_bits, expert_importance, quantize_experts
from nasviz.quant._joint import QuantSupernet, align_layers
from nasviz.quant._modules import FakeQuantize, QuantizedExperts, QuantizedWeight
from nasviz.quant._ptq import MODES, convert, describe, is_quantized, prepare_qat, quantize
from nasviz.quant._qat import QATRun, qat
from nasviz.quant._qtensor import BITS, INT_BITS, dequantize, fake_quantize, quantize_tensor
from nasviz.quant._sensitivity import sensitivity
from nasviz.quant._space import GRANULARITIES, QuantSpace, quant_space
from nasviz.quant._speedup import int8_speedups
from nasviz.quant._targets import Target, find_targets

__all__ = [
    "BITS",
    "GRANULARITIES",
    "INT_BITS",
    "MODES",
    "FakeQuantize",
    "QATRun",
    "QuantSpace",
    "QuantSupernet",
    "QuantizedExperts",
    "QuantizedWeight",
    "Target",
    "align_layers",
    "allocate_expert_bits",
    "convert",
    "count_bytes",
    "dequantize",
    "describe",
    "expert_importance",
    "fake_quantize",
    "find_targets",
    "int8_speedups",
    "is_quantized",
    "model_bytes",
    "prepare_qat",
    "qat",
    "quant_space",
    "quantize",
    "quantize_experts",
    "quantize_tensor",
    "sensitivity",
]
