"""Cost of the built-in objectives on a 10M-parameter model.

Each figure is compared side by side, in this process, with one plain forward pass of the same
model on the same input: counting MACs runs one forward under torch's FLOP counter, so its
overhead over a plain forward is what a search pays per arch.

For supernet archs, the ``macs`` objective uses the supernet's closed-form ``count_macs``; it is
timed against what it replaces (export the subnet, count it under the FLOP counter), arch by arch,
interleaved, and the figure is the median of the paired ratios.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from bench._report import Figure
from nasviz.objectives import count_macs, count_params, macs, measure_latency


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


def _timed(fn, *args) -> tuple[float, float]:
    t0 = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - t0


def _counted(net, arch, shape) -> int:
    return count_macs(net.export(arch), shape)  # what the closed form replaces


def _closed_form_speedups(n_archs: int = 15) -> list[Figure]:
    from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer

    torch.manual_seed(0)
    nets = {
        "ElasticMLP": (ElasticMLP(), (1, 64)),
        "ElasticCNN": (ElasticCNN(), (1, 1, 8, 8)),
        "ElasticTransformer": (ElasticTransformer(100, 32, 4), (1, 32)),
    }
    figures = []
    for family, (net, shape) in nets.items():
        objective, ratios = macs(shape), []
        for arch in net.space.sample(0, n=n_archs):
            counted, t_counted = _timed(_counted, net, arch, shape)
            closed, t_closed = _timed(objective, net, arch)
            if closed != counted:
                raise AssertionError(f"{family} {arch}: closed form {closed} != counted {counted}")
            ratios.append(t_counted / t_closed)
        ratio = statistics.median(ratios)
        figures.append(
            Figure(
                f"objectives.macs_closed_form_speedup.{family}",
                ratio,
                "x",
                f"export + FlopCounterMode of the same arch ({family} defaults), median of "
                f"{n_archs} paired archs",
                ">= 10",
                ratio >= 10,
            )
        )
    return figures


def _forwards(model: nn.Module, x: torch.Tensor, n: int) -> float:
    """Seconds for ``n`` plain forwards in a loop."""
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(n):
            model(x)
    return time.perf_counter() - t0


def run(rounds: int = 5) -> list[Figure]:
    torch.manual_seed(0)
    model = _model().eval()
    shape = (1, 3, 32, 32)
    x = torch.randn(shape)
    n = count_params(model)
    _forwards(model, x, 3)  # warm-up
    count_macs(model, shape)  # the FLOP counter's first use sets itself up (about a second)
    t_params = _median_time(lambda: count_params(model))
    # interleaved rounds: each cost is paired with plain forwards timed right beside it
    forward, t_macs, t_latency, macs_ratio, latency_ratio = [], [], [], [], []
    for _ in range(rounds):
        one = _median_time(lambda: _forwards(model, x, 1), repeats=5)
        _, macs_s = _timed(count_macs, model, shape)
        loop = _forwards(model, x, 35)
        _, latency_s = _timed(measure_latency, model, shape, 30, 5)
        forward.append(one)
        t_macs.append(macs_s)
        t_latency.append(latency_s)
        macs_ratio.append(macs_s / one)
        latency_ratio.append(latency_s / loop)
    med = statistics.median
    base = (
        f"one plain forward of the same {n / 1e6:.1f}M-param model, batch 1 "
        f"({med(forward) * 1e3:.2f} ms), timed beside it in each of {rounds} interleaved rounds"
    )
    spread = lambda r: f"median of {rounds} paired rounds, range {min(r):.2f}-{max(r):.2f}"  # noqa: E731
    return [
        Figure("objectives.model_params", n, "params", "the benchmark model's size"),
        Figure("objectives.params_time", t_params * 1e3, "ms", base),
        Figure("objectives.macs_time", med(t_macs) * 1e3, "ms", base),
        Figure(
            "objectives.macs_over_forward",
            med(macs_ratio),
            "x",
            f"{base}; {spread(macs_ratio)}",
            "<= 20",
            med(macs_ratio) <= 20,
        ),
        Figure(
            "objectives.latency_measure_time",
            med(t_latency) * 1e3,
            "ms",
            "35 forwards (5 warm-up + 30 timed) of the same model",
        ),
        Figure(
            "objectives.latency_overhead",
            med(latency_ratio),
            "x",
            f"35 plain forwards timed in a loop beside it; {spread(latency_ratio)}",
            "<= 1.5",
            med(latency_ratio) <= 1.5,
        ),
        *_closed_form_speedups(),
    ]
