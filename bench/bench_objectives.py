"""Cost of the built-in objectives on a 10M-parameter model.

Each figure is compared side by side, in this process, with one plain forward pass of the same
model on the same input: counting MACs runs one forward under torch's FLOP counter, so its
overhead over a plain forward is what a search pays per arch.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from bench._report import Figure
from nasviz.objectives import count_macs, count_params, measure_latency


def _model() -> nn.Module:
    # conv stem + MLP head: 10.0M parameters, a mix of conv and matmul work
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),  # 64*16 = 1024
        nn.Linear(1024, 2048),
        nn.ReLU(),
        nn.Linear(2048, 2048),
        nn.ReLU(),
        nn.Linear(2048, 1024),
        nn.ReLU(),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )


def _median_time(fn, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run() -> list[Figure]:
    torch.manual_seed(0)
    model = _model().eval()
    shape = (1, 3, 32, 32)
    x = torch.randn(shape)
    n = count_params(model)
    with torch.no_grad():
        model(x)  # warm-up
        forward = _median_time(lambda: model(x))
    t_params = _median_time(lambda: count_params(model))
    t_macs = _median_time(lambda: count_macs(model, shape))
    t_latency = _median_time(lambda: measure_latency(model, shape, repeats=30, warmup=5), repeats=3)
    base = f"one plain forward of the same {n / 1e6:.1f}M-param model, batch 1 ({forward * 1e3:.2f} ms)"
    return [
        Figure("objectives.model_params", n, "params", "the benchmark model's size"),
        Figure("objectives.params_time", t_params * 1e3, "ms", base),
        Figure("objectives.macs_time", t_macs * 1e3, "ms", base),
        Figure(
            "objectives.macs_over_forward",
            t_macs / forward,
            "x",
            base,
            "<= 20",
            t_macs / forward <= 20,
        ),
        Figure(
            "objectives.latency_measure_time",
            t_latency * 1e3,
            "ms",
            "35 forwards (5 warm-up + 30 timed) of the same model",
        ),
        Figure(
            "objectives.latency_overhead",
            t_latency / (35 * forward),
            "x",
            "35 plain forwards timed in a loop",
            "<= 1.5",
            t_latency / (35 * forward) <= 1.5,
        ),
    ]
