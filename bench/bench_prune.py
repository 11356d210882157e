"""Pruning benchmarks: global magnitude masks on a 100M-parameter model (time and peak
memory), the MaskViewer on a 16M-weight layer (build time and bytes sent), and the real CPU
speedup and size reduction of shrunk (channel-pruned) models of every supernet family and a
plain MLP at 25/50/75% channels.

Timing ratios are measured side by side: dense and shrunk forwards alternate in blocks of about
20 ms (after warm-up, one torch thread for both), and a speedup is the median of the per-block
ratios, so machine load that drifts during the run hits both alike.

Run: ``.venv/bin/python -m bench prune`` (about 2-3 minutes; peaks near 1.5 GB of memory).
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from bench._report import Figure
from bench._timing import alternate
from nasviz.objectives import count_macs, count_params
from nasviz.prune import Masks, channels, magnitude, shrink

RATIOS = (0.25, 0.5, 0.75)
BLOCK_S = 0.02  # seconds of forwards per timed block
ROUNDS = 21  # timed blocks per model


# ---- global magnitude on 100M parameters ---------------------------------------------------
def _big_model() -> nn.Module:
    """Ten 3200x3200 Linear layers: 102.4M weights (410 MB)."""
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Linear(3200, 3200, bias=False) for _ in range(10)])


def _peak_mb() -> float:
    """The process's peak resident memory since the last :func:`_reset_peak`, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> float:
    """Resets the peak resident memory to the current one (Linux); returns it in MB."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _peak_mb()


def _magnitude_figures() -> list[Figure]:
    model = _big_model()
    n = count_params(model)
    times, extra = [], []
    for _ in range(3):
        base = _reset_peak()
        t0 = time.perf_counter()
        masks = magnitude(model, 0.5, scope="global")
        times.append(time.perf_counter() - t0)
        extra.append(_peak_mb() - base)
        assert abs(masks.sparsity - 0.5) < 1e-6
        del masks
    ours = statistics.median(times)
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
            f"global magnitude masks at 50% sparsity, median of 3 ({', '.join(f'{t:.2f}' for t in times)} s)",
            "< 10 s",
            ours < 10,
        ),
        Figure(
            "prune.magnitude_global.100M_peak_extra_memory",
            max(extra),
            "MB",
            f"peak resident memory above the model's own ({n * 4 / 2**20:.0f} MiB of weights); "
            "the masks themselves are 98 MiB of bools",
        ),
        Figure(
            "prune.magnitude_global.vs_full_sort",
            full_sort / ours,
            "x",
            f"torch.sort of all |w| alone: {full_sort:.2f} s vs nasviz {ours:.2f} s",
        ),
    ]


# ---- the MaskViewer on a 16M-weight layer ---------------------------------------------------
def _viewer_figures() -> list[Figure]:
    from nasviz.ui._masks import MaskViewer

    g = torch.Generator().manual_seed(0)
    masks = Masks(
        {
            "0.weight": torch.rand(4096, 4096, generator=g) > 0.5,  # 16.8M weights
            "1.weight": torch.rand(10, 4096, generator=g) > 0.5,
        }
    )
    MaskViewer(masks)._repr_mimebundle_()  # warm: imports, plotly's first figure
    builds, statics = [], []
    for _ in range(5):
        fresh = Masks(dict(masks))  # nothing cached from the previous viewer
        t0 = time.perf_counter()
        viewer = MaskViewer(fresh)
        t1 = time.perf_counter()
        viewer._repr_mimebundle_()  # the widget plus the static figure a saved notebook keeps
        builds.append(t1 - t0)
        statics.append(time.perf_counter() - t1)
    build, static = statistics.median(builds), statistics.median(statics)
    sent = viewer.sent_bytes
    weights = 4096 * 4096
    return [
        Figure(
            "prune.viewer.16M_build_time",
            build * 1e3,
            "ms",
            "MaskViewer(masks) with a 4096x4096 layer, Python side, warm, median of 5",
            "< 250 ms",
            build < 0.25,
        ),
        Figure(
            "prune.viewer.16M_display_time",
            (build + static) * 1e3,
            "ms",
            f"build plus the display bundle with its static figure ({static * 1e3:.0f} ms)",
            "< 500 ms",
            build + static < 0.5,
        ),
        Figure(
            "prune.viewer.16M_mask_bytes",
            sent / 2**20,
            "MiB",
            f"bit-packed, 1 bit per weight (1 byte per weight would be {weights / 2**20:.0f} MiB)",
        ),
    ]


# ---- shrink: real speed and size -------------------------------------------------------------
def _forward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def _paired(dense: nn.Module, small: nn.Module, x: torch.Tensor) -> tuple[float, float, float]:
    """(dense ms, shrunk ms, median speedup) from interleaved blocks, one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = _forward(dense, x), _forward(small, x)
        for _ in range(5):  # warm-up
            a(), b()
        t0 = time.perf_counter()
        a()
        inner = max(1, round(BLOCK_S / max(time.perf_counter() - t0, 1e-6)))
        dense_ms, small_ms, ratios = alternate(a, b, ROUNDS, inner)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(dense_ms), statistics.median(small_ms), statistics.median(ratios)


def _state_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer (what saving or loading the model moves)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _shrink_figures(
    name: str, model: nn.Module, x: torch.Tensor, target: float | None = None
) -> list[Figure]:
    model.eval()
    shape = tuple(x.shape)
    params, size, work = count_params(model), _state_bytes(model), count_macs(model, shape)
    figures = []
    for ratio in RATIOS:
        masks = channels(model, ratio, example_input=x[:2])
        small = shrink(model, masks, example_input=x[:2]).eval()
        dense_ms, small_ms, speedup = _paired(model, small, x)
        macs = count_macs(small, shape) / work
        pct = int(ratio * 100)
        goal = target is not None and ratio == 0.5
        figures += [
            Figure(
                f"prune.shrink.{name}.{pct}pct.speedup",
                speedup,
                "x",
                f"dense {dense_ms:.3g} ms vs shrunk {small_ms:.3g} ms per batch of {shape[0]}, "
                f"1 thread, median of {ROUNDS} interleaved blocks; MACs ratio {1 / macs:.2f}x",
                f">= {target}" if goal else "",
                (speedup >= target) if goal else None,
            ),
            Figure(
                f"prune.shrink.{name}.{pct}pct.params",
                count_params(small) / params,
                "x of dense",
                f"{count_params(small):,} of {params:,} parameters",
            ),
            Figure(
                f"prune.shrink.{name}.{pct}pct.memory",
                _state_bytes(small) / size,
                "x of dense",
                f"state dict (parameters + buffers) {_state_bytes(small) / 1024:.0f} KiB "
                f"of {size / 1024:.0f} KiB",
            ),
            Figure(
                f"prune.shrink.{name}.{pct}pct.macs",
                macs,
                "x of dense",
                f"{count_macs(small, shape):,} of {work:,} MACs per batch",
            ),
        ]
    return figures


def _families() -> list[tuple[str, nn.Module, torch.Tensor, float | None]]:
    from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cnn, mlp = ElasticCNN(), ElasticMLP()
    transformer = ElasticTransformer(vocab_size=100, seq_len=32, num_classes=4)
    widths = (64, 1024, 1024, 1024)  # plain MLP: three hidden Linear + ReLU, 10 classes
    hidden = [m for a, b in itertools.pairwise(widths) for m in (nn.Linear(a, b), nn.ReLU())]
    plain = nn.Sequential(*hidden, nn.Linear(widths[-1], 10))
    return [
        (
            "elastic_cnn",
            cnn.export(cnn.space.largest()),
            torch.randn(256, 1, 8, 8, generator=g),
            1.6,
        ),
        ("elastic_mlp", mlp.export(mlp.space.largest()), torch.randn(256, 64, generator=g), None),
        (
            "elastic_transformer",
            transformer.export(transformer.space.largest()),
            torch.randint(0, 100, (64, 32), generator=g),
            None,
        ),
        ("mlp", plain, torch.randn(256, 64, generator=g), None),
    ]


def run() -> list[Figure]:
    figures = _viewer_figures()
    for name, model, x, target in _families():
        figures += _shrink_figures(name, model, x, target)
    t0 = time.perf_counter()
    figures += _magnitude_figures()
    figures.append(
        Figure(
            "prune.magnitude_global.100M_section_time",
            time.perf_counter() - t0,
            "s",
            "building the 100M model, three mask computations and the full-sort baseline",
        )
    )
    return figures
