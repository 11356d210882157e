"""Quantization-aware fine-tuning vs post-training quantization on digits, paired by seed.

For each seed: the 64-128-128-10 MLP of ``bench quant`` is trained with that seed (a plain Adam
loop, 30 epochs), then quantized weight-only to 4, 3 and 2 bits (affine per-channel codes,
simulated kernels) twice: by PTQ (:func:`nasviz.quant.quantize`) and by QAT
(:func:`nasviz.quant.qat`: ``STEPS`` fine-tuning steps of the fake-quantized copy on the train
split, same seed). Accuracy is measured on val + test (538 digits neither training saw; one
digit is 0.19 points). Figures: the accuracy drop vs fp32 after PTQ and after QAT (median over
the seeds, min-max in the text) and the paired gain QAT - PTQ (median, min-max, how many seeds
gained). The 1-minute load average at the start and end is in the text (a loaded machine only
slows this bench; its figures do not depend on timing).

Run: ``.venv/bin/python -m bench quant_qat`` (about 3 minutes on 2 loaded cores).
"""

from __future__ import annotations

import os
import statistics

import torch

from bench._report import Figure
from bench.bench_quant import _train_mlp
from nasviz.data import digits
from nasviz.quant import qat, quantize

SEEDS = (0, 1, 2, 3, 4)
BITS = (4, 3, 2)
STEPS = 100


def _held_out_accuracy(model: torch.nn.Module, data) -> float:
    X = torch.cat([data.val.X, data.test.X])
    y = torch.cat([data.val.y, data.test.y])
    with torch.no_grad():
        return 100.0 * float((model(X).argmax(-1) == y).float().mean())


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}, min {min(values):.2f}, max {max(values):.2f}"


def run() -> list[Figure]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    load = [os.getloadavg()[0]]
    data = digits(seed=0)
    full: list[float] = []
    ptq: dict[int, list[float]] = {b: [] for b in BITS}
    fine: dict[int, list[float]] = {b: [] for b in BITS}
    try:
        for seed in SEEDS:
            model = _train_mlp(data, seed)
            full.append(_held_out_accuracy(model, data))
            for bits in BITS:
                ptq[bits].append(_held_out_accuracy(quantize(model, bits), data))
                run_ = qat(model, data, bits=bits, steps=STEPS, seed=seed)
                status = run_.run()
                if status.state != "finished":
                    raise RuntimeError(f"QAT run {status}: {run_.traceback}")
                fine[bits].append(_held_out_accuracy(run_.quantized(), data))
    finally:
        torch.set_num_threads(before)
    load.append(os.getloadavg()[0])
    where = (
        f"{len(SEEDS)} seeds, 538 held-out digits, fp32 {_spread(full)}%, "
        f"load {load[0]:.1f}-{load[1]:.1f}"
    )
    figures = []
    for bits in BITS:
        drop_ptq = [f - q for f, q in zip(full, ptq[bits], strict=True)]
        drop_qat = [f - q for f, q in zip(full, fine[bits], strict=True)]
        gain = [q - p for q, p in zip(fine[bits], ptq[bits], strict=True)]
        target = "<= 2" if bits == 4 else ""
        figures += [
            Figure(
                f"quant_qat.digits_drop.mlp.ptq{bits}",
                statistics.median(drop_ptq),
                "points",
                f"{bits}-bit weight-only PTQ (simulated), drop {_spread(drop_ptq)}; {where}",
            ),
            Figure(
                f"quant_qat.digits_drop.mlp.qat{bits}",
                statistics.median(drop_qat),
                "points",
                f"{bits}-bit QAT {STEPS} steps (simulated), drop {_spread(drop_qat)}; {where}",
                target,
                statistics.median(drop_qat) <= 2.0 if target else None,
            ),
            Figure(
                f"quant_qat.qat_minus_ptq.mlp.b{bits}",
                statistics.median(gain),
                "points",
                f"paired by seed: QAT - PTQ at {bits} bits {_spread(gain)}, "
                f"{sum(g > 0 for g in gain)}/{len(gain)} seeds gained; {where}",
                ">= 0",
                statistics.median(gain) >= 0,
            ),
        ]
    return figures
