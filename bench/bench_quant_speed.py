"""Is dynamic int8's speed-up on an MLP real, and does it grow with the model? A re-check of
``bench quant``'s missed 1.8x target.

The MLP 64-W^3-10 for W = 1024 (``bench quant``'s model, 8.7 MB of fp32 weights), 2048
(34 MB) and 4096 (135 MB), batch 1 and 64, one torch thread: fp32 vs nasviz's dynamic int8
(torch.ao fbgemm, per-channel weights: what ``quantize(mode="dynamic")`` makes), and vs
torch.ao's per-tensor dynamic int8 (its default) to see what per-channel scales cost, and vs a
copy of itself (a control: how far from 1 the timing noise of a loaded machine puts a ratio). Each
ratio is the median of 21 interleaved timing blocks (``bench_prune._paired``); every int8 model
is checked to hold torch.ao's quantized modules (``describe`` says "real") before it is timed.
The text gives the CPU's int8 instruction set (fbgemm's fast path needs AVX512-VNNI; AVX2 only
has 16-bit multiply-adds) and the 1-minute load average around the run.

Run: ``.venv/bin/python -m bench quant_speed`` (about 2-4 minutes on 2 loaded cores).
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from bench._report import Figure
from bench.bench_prune import _paired
from bench.bench_quant import _mlp
from nasviz.quant import describe, quantize

WIDTHS = (1024, 2048, 4096)
BATCHES = (1, 64)


def _isa() -> str:
    """The CPU's widest int8 dot-product support, from /proc/cpuinfo (Linux)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown ISA"
    for flag, name in (
        ("amx_int8", "AMX-INT8"),
        ("avx512_vnni", "AVX512-VNNI"),
        ("avx_vnni", "AVX-VNNI"),
        ("avx512bw", "AVX512BW (no VNNI)"),
        ("avx2", "AVX2 (no VNNI)"),
    ):
        if flag in flags:
            return name
    return "no AVX2"


def _per_tensor(model: nn.Module) -> nn.Module:
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(
            copy.deepcopy(model), {nn.Linear: default_dynamic_qconfig}, dtype=torch.qint8
        )


def _what(label: str) -> str:
    if label == "control":
        return "a copy of the same fp32 model (control: ~1 unless timing is noisy)"
    return f"int8 dynamic {label.replace('_', '-')}"


def run() -> list[Figure]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    isa = _isa()
    figures = []
    try:
        for width in WIDTHS:
            model = _mlp(width)
            mb = sum(p.numel() for p in model.parameters()) * 4 / 1e6
            channel, tensor = quantize(model, mode="dynamic"), _per_tensor(model)
            for q in (channel, tensor):
                kernels = set(describe(q)["kernel"])
                if kernels != {"real"}:
                    raise RuntimeError(f"expected real int8 kernels only, got {kernels}")
            for batch in BATCHES:
                x = torch.randn(batch, 64, generator=torch.Generator().manual_seed(0))
                for label, q in (
                    ("per_channel", channel),
                    ("per_tensor", tensor),
                    ("control", copy.deepcopy(model)),  # fp32 vs fp32: the timing noise
                ):
                    fp_ms, q_ms, ratio = _paired(model, q, x)
                    figures.append(
                        Figure(
                            f"quant_speed.dynamic_int8_{label}.mlp{width}.b{batch}",
                            ratio,
                            "x",
                            f"fp32 {fp_ms:.3f} ms vs {_what(label)} {q_ms:.3f} ms, "
                            f"{mb:.0f} MB fp32 weights, 1 thread, {isa}, "
                            f"load {load:.1f}-{os.getloadavg()[0]:.1f}",
                            ">= 1.8" if label == "per_channel" else "",
                            ratio >= 1.8 if label == "per_channel" else None,
                        )
                    )
    finally:
        torch.set_num_threads(before)
    return figures
