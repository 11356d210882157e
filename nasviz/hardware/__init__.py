"""Hardware-aware latency: runtimes, device profiles, latency tables and predictors, checks.

* :func:`nasviz.latency` / :func:`~nasviz.objectives.measure_latency` take
  ``runtime="eager" | "compile" | "onnxruntime"`` and ``device=``; :func:`latency_sweep`
  measures batch sizes, sequence lengths and runtimes into one DataFrame.
* :class:`HardwareProfile` — a supernet's per-block latencies measured once on one machine
  (:class:`Machine` recorded with them), saved and loaded as JSON.
* :class:`LatencyTable` (sum of the blocks' latencies) and :class:`LatencyPredictor` (a ridge
  regression on top of it, HAT style); :func:`latency_table` — either as a cheap search
  objective, usable in constraints.
* :func:`check_latency` — a search's front measured for real: predicted vs measured, with
  the archs that break the latency budget in reality flagged.

ONNX export itself is :func:`nasviz.export.onnx`. ``onnxruntime`` needs the ``deploy`` extra.
"""

from __future__ import annotations

from nasviz.hardware._check import check_latency
from nasviz.hardware._machine import Machine
from nasviz.hardware._predictor import LatencyPredictor
from nasviz.hardware._profile import BlockRecord, HardwareProfile
from nasviz.hardware._runtime import RUNTIMES, installed_runtimes
from nasviz.hardware._sweep import latency_sweep
from nasviz.hardware._table import LatencyTable, latency_table

__all__ = [
    "RUNTIMES",
    "BlockRecord",
    "HardwareProfile",
    "LatencyPredictor",
    "LatencyTable",
    "Machine",
    "check_latency",
    "installed_runtimes",
    "latency_sweep",
    "latency_table",
]
