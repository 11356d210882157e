"""Pruning benchmarks: global magnitude masks on a 100M-parameter model, bytes sent to draw a
16M-weight mask, and the real CPU speedup / size reduction of shrunk (channel-pruned) models.

Run: ``.venv/bin/python -m bench prune`` (about 1-2 minutes; peaks near 2 GB of memory).
"""

from __future__ import annotations

import gc
import time

import torch
from torch import nn

from bench._report import Figure
from nasviz.objectives import count_params, measure_latency
from nasviz.prune import channels, magnitude, shrink

BATCH_CNN = (256, 1, 8, 8)
BATCH_MLP = (256, 64)


def _big_model() -> nn.Module:
    """Ten 3200x3200 Linear layers: 102.4M weights (410 MB)."""
    torch.manual_seed(0)
    layers = [nn.Linear(3200, 3200, bias=False) for _ in range(10)]
    return nn.Sequential(*layers)


def _magnitude_figures() -> list[Figure]:
    model = _big_model()
    n = count_params(model)
    t0 = time.perf_counter()
    masks = magnitude(model, 0.5, scope="global")
    ours = time.perf_counter() - t0
    assert abs(masks.sparsity - 0.5) < 1e-6
    del masks
    gc.collect()
    t0 = time.perf_counter()
    flat = torch.cat([p.detach().abs().flatten() for p in model.parameters()])
    torch.sort(flat)  # the full sort kthvalue avoids
    full_sort = time.perf_counter() - t0
    del flat, model
    gc.collect()
    return [
        Figure("prune.magnitude_global.100M_params", n / 1e6, "M params", "model size measured"),
        Figure(
            "prune.magnitude_global.100M_time",
            ours,
            "s",
            "global magnitude masks at 50% sparsity",
            "< 10 s",
            ours < 10,
        ),
        Figure(
            "prune.magnitude_global.vs_full_sort",
            full_sort / ours,
            "x",
            f"torch.sort of all |w| alone: {full_sort:.2f} s vs nasviz {ours:.2f} s",
        ),
    ]


def _bytes_figures() -> list[Figure]:
    from nasviz.ui._masks import pack_mask

    mask = torch.rand(4096, 4096, generator=torch.Generator().manual_seed(0)) > 0.5  # 16.8M weights
    t0 = time.perf_counter()
    rows, cols, bits = pack_mask(mask)
    pack = time.perf_counter() - t0
    one_byte = rows * cols
    return [
        Figure(
            "prune.viewer.16M_mask_bytes",
            len(bits) / 2**20,
            "MiB",
            f"1 byte/weight: {one_byte / 2**20:.1f} MiB",
        ),
        Figure(
            "prune.viewer.16M_mask_reduction",
            one_byte / len(bits),
            "x",
            "bytes at 1 byte per weight / bytes sent",
            ">= 8",
            one_byte / len(bits) >= 8,
        ),
        Figure(
            "prune.viewer.16M_pack_time",
            pack * 1e3,
            "ms",
            "numpy.packbits of the 4096x4096 mask",
            "< 500 ms",
            pack < 0.5,
        ),
    ]


def _cnn() -> nn.Module:
    from nasviz.supernet import ElasticCNN

    torch.manual_seed(0)
    net = ElasticCNN()
    return net.export(net.space.largest()).eval()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, 1024),
        nn.ReLU(),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, 10),
    ).eval()


def _shrink_figures(
    name: str, model: nn.Module, shape: tuple[int, ...], target: float | None
) -> list[Figure]:
    x = torch.randn(shape)
    dense = measure_latency(model, shape, repeats=30, warmup=5, threads=1).median_ms
    params = count_params(model)
    figures = []
    for ratio in (0.25, 0.5, 0.75):
        masks = channels(model, ratio, example_input=x[:2])
        small = shrink(model, masks, example_input=x[:2])
        ms = measure_latency(small, shape, repeats=30, warmup=5, threads=1).median_ms
        speedup = dense / ms
        pct = int(ratio * 100)
        goal = target is not None and ratio == 0.5
        figures += [
            Figure(
                f"prune.shrink.{name}.{pct}pct.speedup",
                speedup,
                "x",
                f"dense {dense:.2f} ms vs shrunk {ms:.2f} ms, batch {shape[0]}, 1 thread",
                f">= {target}" if goal else "",
                (speedup >= target) if goal else None,
            ),
            Figure(
                f"prune.shrink.{name}.{pct}pct.params",
                count_params(small) / params,
                "x of dense",
                f"{count_params(small):,} of {params:,} params (memory scales the same)",
            ),
        ]
    return figures


def run() -> list[Figure]:
    figures = _bytes_figures()
    figures += _shrink_figures("elastic_cnn", _cnn(), BATCH_CNN, 1.6)
    figures += _shrink_figures("mlp", _mlp(), BATCH_MLP, None)
    t0 = time.perf_counter()
    figures += _magnitude_figures()
    figures.append(
        Figure(
            "prune.magnitude_global.100M_section_time",
            time.perf_counter() - t0,
            "s",
            "building the 100M model, masks and the full-sort baseline",
        )
    )
    return figures
