"""MoE benchmarks: RoutingRecorder overhead on a forward pass (nasviz MoE classifier and a tiny
Mixtral), and aggregating 1,000,000 routing decisions into RoutingStats tables.

Run: ``.venv/bin/python -m bench moe`` (about half a minute).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from bench._report import Figure
from nasviz.moe import LayerRecord, MoEClassifier, Recording, RoutingRecorder, RoutingStats

REPEATS = 10


def _best(fn: Callable[[], object]) -> float:
    """Fastest of REPEATS runs: on a shared machine noise only adds time, so the minimum is the
    steadiest estimate."""
    fn()  # warm up
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _overhead(model: torch.nn.Module, run: Callable[[], object], name: str) -> list[Figure]:
    """Forward time inside an active recorder (hooks on, every call recorded) over without."""
    recorder = RoutingRecorder(model)
    with torch.no_grad():
        plain_s = rec_s = float("inf")
        for _ in range(6):  # alternate short blocks of plain and recorded runs
            plain_s = min(plain_s, _best(run))
            with recorder:
                rec_s = min(rec_s, _best(run))
        once = RoutingRecorder(model)
        with once:
            run()
            t0 = time.perf_counter()
        recording = once.recording()  # built on exit (arrays, probabilities) and cached
        finish_s = time.perf_counter() - t0
    ratio = rec_s / plain_s
    return [
        Figure(
            f"moe.recorder_overhead.{name}",
            ratio,
            "x",
            "same forward without recorder, same process",
            "<= 1.10",
            ratio <= 1.10,
        ),
        Figure(
            f"moe.forward_time.{name}",
            plain_s * 1e3,
            "ms",
            "forward without recorder (informational)",
        ),
        Figure(
            f"moe.recording_finish.{name}",
            finish_s * 1e3,
            "ms",
            f"turning {recording.num_decisions} recorded decisions into arrays, once per recording",
        ),
    ]


def _classifier_overhead() -> list[Figure]:
    torch.manual_seed(0)
    model = MoEClassifier(
        vocab_size=53,
        num_classes=2,
        seq_len=16,
        dim=64,
        hidden=128,
        num_experts=8,
        top_k=2,
        num_layers=2,
    ).eval()
    X = torch.randint(0, 53, (512, 16), generator=torch.Generator().manual_seed(0))
    return _overhead(model, lambda: model(X), "classifier_512x16")


def _mixtral_overhead() -> list[Figure]:
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=8,
        num_experts_per_tok=2,
        max_position_embeddings=64,
    )
    model = MixtralForCausalLM(config).eval()
    ids = torch.randint(0, 128, (16, 64), generator=torch.Generator().manual_seed(0))
    return _overhead(model, lambda: model(input_ids=ids), "mixtral_16x64")


def _million_decisions(
    layers: int = 4, tokens: int = 125_000, experts: int = 8, k: int = 2
) -> Recording:
    rng = np.random.default_rng(0)
    length = 50
    records = []
    for i in range(layers):
        logits = rng.normal(size=(tokens, experts)).astype(np.float32)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        chosen = np.argsort(-probs, axis=1)[:, :k]
        gates = np.take_along_axis(probs, chosen, axis=1)
        gates /= gates.sum(axis=1, keepdims=True)
        records.append(
            LayerRecord(
                f"layer{i}",
                experts,
                k,
                chosen,
                gates,
                probs,
                logits,
                np.arange(tokens) // length,
                np.arange(tokens) % length,
                rng.integers(0, 1000, size=tokens),
            )
        )
    labels = {"task": rng.integers(0, 4, size=tokens // length)}
    return Recording(tuple(records), tokens // length, labels)


def _aggregation() -> list[Figure]:
    recording = _million_decisions()
    assert recording.num_decisions == 1_000_000
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        stats = RoutingStats(recording)
        stats.load()
        stats.by_label("task")
        stats.balance()
        stats.entropy()
        for layer in range(len(recording.layers)):
            stats.coactivation(layer)
        times.append(time.perf_counter() - t0)
    best = statistics.median(times)
    return [
        Figure(
            "moe.stats_1M_decisions",
            best,
            "s",
            "load + by_label + balance + entropy + coactivation of 1M decisions (4 layers x 125k tokens x top-2)",
            "<= 0.5",
            best <= 0.5,
        )
    ]


def run() -> list[Figure]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread for both sides: far steadier ratios on a shared machine
    try:
        return _classifier_overhead() + _mixtral_overhead() + _aggregation()
    finally:
        torch.set_num_threads(threads)
