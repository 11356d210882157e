"""MoE benchmarks: RoutingRecorder overhead on forward passes (a Hugging Face Mixtral and the
nasviz MoE classifier at representative sizes, plus the worst case, one single-token decode
step), and aggregating 1,000,000 routing decisions into RoutingStats tables.

Overhead method: calls are timed in pairs, one plain forward and one recorded forward in random
order, each recorded forward inside a fresh RoutingRecorder (only the forward is timed, not
entering or reading the recorder). The figure is the median of the per-pair ratios; the same
number of control pairs (plain vs plain, in random order, interleaved with the others) gives
the noise floor of the machine. Absolute costs are medians of per-pair differences, reported
for the single-token case only: batch forwards vary by more than the recorder costs.

Run: ``.venv/bin/python -m bench moe`` (a few minutes on one core).
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bench._report import Figure
from nasviz.moe import LayerRecord, MoEClassifier, Recording, RoutingRecorder, RoutingStats

SEED = 0
WARMUP = 2


@dataclass(frozen=True)
class _Case:
    """One overhead measurement: a model, how to call it, how many pairs."""

    name: str
    model: torch.nn.Module
    call: Callable[[], object]  # one forward
    prepare: Callable[[], None]  # untimed, before every call (e.g. a fresh KV cache)
    pairs: int
    layers: int
    what: str
    absolute: bool  # report microseconds too (only where they stand above the pair noise)


def _timed(case: _Case, recorded: bool) -> float:
    case.prepare()
    if not recorded:
        t0 = time.perf_counter()
        case.call()
        return time.perf_counter() - t0
    with RoutingRecorder(case.model):  # fresh each time: a re-entered one would keep growing
        t0 = time.perf_counter()
        case.call()
        elapsed = time.perf_counter() - t0
    return elapsed


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(q2), float(q3)


def _overhead(case: _Case) -> list[Figure]:
    rng = random.Random(SEED)
    with torch.no_grad():
        for _ in range(WARMUP):
            _timed(case, False)
            _timed(case, True)
        kinds = ["recorded"] * case.pairs + ["control"] * case.pairs
        rng.shuffle(kinds)
        ratio = {"recorded": [], "control": []}
        diff = {"recorded": [], "control": []}
        plain = []
        for kind in kinds:
            flags = [False, kind == "recorded"]
            if rng.random() < 0.5:
                flags.reverse()
            times = dict(zip(("first", "second"), (_timed(case, f) for f in flags), strict=True))
            # recorded pair: (recorded, plain); control pair: (whichever came second, first)
            test, base = (
                (times["first"], times["second"]) if flags[0] else (times["second"], times["first"])
            )
            ratio[kind].append(test / base)
            diff[kind].append(test - base)
            plain.append(base)
        once = RoutingRecorder(case.model)
        case.prepare()
        with once:
            case.call()
            t0 = time.perf_counter()
        finish_s = time.perf_counter() - t0  # __exit__ builds the recording's arrays
    r1, r2, r3 = _quartiles(ratio["recorded"])
    c1, c2, c3 = _quartiles(ratio["control"])
    us = statistics.median(diff["recorded"]) * 1e6
    control_us = statistics.median(diff["control"]) * 1e6
    name = case.name
    figures = [
        Figure(
            f"moe.recorder_overhead.{name}",
            r2,
            "x",
            f"median of {case.pairs} paired ratios recorded/plain (IQR {r1:.3f}-{r3:.3f}); "
            f"{case.what}",
            "<= 1.10",
            r2 <= 1.10,
        ),
        Figure(
            f"moe.recorder_noise.{name}",
            c2,
            "x",
            f"control: median of {case.pairs} paired ratios plain/plain (IQR {c1:.3f}-{c3:.3f})",
        ),
        Figure(
            f"moe.forward_ms.{name}",
            statistics.median(plain) * 1e3,
            "ms",
            "plain forward, median (informational)",
        ),
        Figure(
            f"moe.recording_finish_ms.{name}",
            finish_s * 1e3,
            "ms",
            "building the recording's arrays after one forward, once per recording",
        ),
    ]
    if not case.absolute:
        return figures
    return [
        *figures,
        Figure(
            f"moe.recorder_us_per_forward.{name}",
            us,
            "us",
            f"median paired difference recorded - plain (control plain - plain: {control_us:+.0f} us)",
        ),
        Figure(
            f"moe.recorder_us_per_layer.{name}",
            us / case.layers,
            "us",
            f"per MoE layer ({case.layers} layers)",
        ),
    ]


SIZE = "hidden 512, FFN 1024, 4 layers, 8 experts top-2"
BATCH, TOKENS = 8, 256
PAIRS_BATCH, PAIRS_TOKEN = 16, 150  # a batch forward takes ~1 s on one core, a token ~10 ms


def _two_cases(
    name: str,
    model: torch.nn.Module,
    batch: Callable[[], object],
    token: Callable[[], object],
    prepare_token: Callable[[], None],
    what: str,
) -> list[_Case]:
    """The representative case (a batch of sequences) and the worst case (one token)."""
    return [
        _Case(
            f"{name}_{BATCH}x{TOKENS}",
            model,
            batch,
            lambda: None,
            PAIRS_BATCH,
            4,
            f"{what} ({SIZE}), batch {BATCH} x {TOKENS} tokens",
            absolute=False,  # ~1 s forwards differ by milliseconds pair to pair: ratios only
        ),
        _Case(
            f"{name}_1x1",
            model,
            token,
            prepare_token,
            PAIRS_TOKEN,
            4,
            f"{what} ({SIZE}), one token (B=1, T=1)",
            absolute=True,
        ),
    ]


def _ids() -> torch.Tensor:
    return torch.randint(0, 1000, (BATCH, TOKENS), generator=torch.Generator().manual_seed(SEED))


def _mixtral_cases() -> list[_Case]:
    """A Hugging Face Mixtral; its one-token case is a real decode step on a 255-token cache."""
    from transformers import DynamicCache, MixtralConfig, MixtralForCausalLM

    torch.manual_seed(SEED)
    config = MixtralConfig(
        vocab_size=1000,
        hidden_size=512,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        num_local_experts=8,
        num_experts_per_tok=2,
        max_position_embeddings=512,
    )
    model = MixtralForCausalLM(config).eval()
    ids = _ids()
    with torch.no_grad():
        prefix = model(input_ids=ids[:1, :-1], past_key_values=DynamicCache()).past_key_values
    state = {}

    def fresh_cache() -> None:
        state["cache"] = copy.deepcopy(prefix)

    def decode() -> object:
        return model(input_ids=ids[:1, -1:], past_key_values=state["cache"], use_cache=True)

    return _two_cases(
        "mixtral", model, lambda: model(input_ids=ids), decode, fresh_cache, "HF Mixtral"
    )


def _classifier_cases() -> list[_Case]:
    """The nasviz MoEClassifier at the same sizes."""
    torch.manual_seed(SEED)
    model = MoEClassifier(
        1000, seq_len=TOKENS, num_classes=2, dim=512, hidden=1024, num_experts=8, top_k=2,
        num_layers=4,
    ).eval()  # fmt: skip
    ids = _ids()
    return _two_cases(
        "classifier",
        model,
        lambda: model(ids),
        lambda: model(ids[:1, :1]),
        lambda: None,
        "nasviz MoEClassifier",
    )


def _million_decisions(
    layers: int = 4, tokens: int = 125_000, experts: int = 8, k: int = 2
) -> Recording:
    rng = np.random.default_rng(SEED)
    length = 50
    records = []
    for i in range(layers):
        logits = rng.normal(size=(tokens, experts)).astype(np.float32)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        chosen = np.argsort(-probs, axis=1)[:, :k]
        gates = np.take_along_axis(probs, chosen, axis=1)
        gates /= gates.sum(axis=1, keepdims=True)
        dropped = rng.random(chosen.shape) < 0.05  # a capacity limit drops a few
        records.append(
            LayerRecord(
                f"layer{i}",
                experts,
                k,
                chosen,
                np.where(dropped, 0.0, gates).astype(np.float32),
                probs,
                logits,
                np.arange(tokens) // length,
                np.arange(tokens) % length,
                rng.integers(0, 1000, size=tokens),
                dropped=dropped,
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
        stats.expert_load()
        stats.by_label("task")
        stats.summary()
        for layer in range(len(recording.layers)):
            stats.coactivation(layer)
        times.append(time.perf_counter() - t0)
    best = statistics.median(times)
    return [
        Figure(
            "moe.stats_1M_decisions",
            best,
            "s",
            "median of 5: load + by_label + summary (balance, entropy) + coactivation of 1M "
            "decisions (4 layers x 125k tokens x top-2)",
            "<= 0.5",
            best <= 0.5,
        )
    ]


def run() -> list[Figure]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread for both sides: far steadier ratios on a shared machine
    try:
        figures = []
        for case in _mixtral_cases() + _classifier_cases():
            figures += _overhead(case)
        return figures + _aggregation()
    finally:
        torch.set_num_threads(threads)
