"""Hugging Face compression benchmarks, on models built from configs (random weights):

* latency and memory of a GPT-2-small-sized model (124M parameters) and a Llama-like one
  (12 layers, 768 wide, grouped-query attention 12/4 heads, ~125M parameters) with 25% and 50%
  of their heads and FFN neurons pruned (``Importance`` plans, applied in place) against the
  dense model, at batch 8 x 256 tokens; target: speedup >= 80% of the parameter ratio; memory:
  the weights and the key/value cache one forward leaves;
* importance (activation, all heads / neurons / layers) of the 124M GPT-2 on 64 sequences of
  256 tokens; target <= 30 s on 2 cores.

Latency is measured paired: dense and pruned forwards alternate (order swapped every round),
and the speedup is the median of the per-round ratios, so load that drifts during the run hits
both alike. ``BENCH_HF_SCALE=quick`` runs the same code on small shapes (figures then carry no
target) to check the benchmark works.

Run: ``.venv/bin/python -m bench hf`` (several minutes on 2 idle cores, far more on a loaded
machine; about 2 GB of memory).
"""

from __future__ import annotations

import copy
import os
import time

import torch
from torch import nn

from bench._report import Figure
from bench._timing import paired
from nasviz.objectives import count_params
from nasviz.prune import Importance

QUICK = os.environ.get("BENCH_HF_SCALE", "full") == "quick"
BATCH, LENGTH = (2, 64) if QUICK else (8, 256)
CALIBRATION = (16, 64) if QUICK else (64, 256)  # importance: sequences x tokens
ROUNDS = 3  # interleaved rounds per pair (a full-size forward takes seconds)
SPARSITIES = (0.25, 0.5)


def _gpt2() -> nn.Module:
    import transformers as tf

    torch.manual_seed(0)
    return tf.GPT2LMHeadModel(tf.GPT2Config(bos_token_id=1, eos_token_id=2)).eval()  # GPT-2 small


def _llama() -> nn.Module:
    import transformers as tf

    torch.manual_seed(0)
    config = tf.LlamaConfig(
        vocab_size=32000,
        hidden_size=768,
        num_attention_heads=12,
        num_key_value_heads=4,
        intermediate_size=2048,
        num_hidden_layers=12,
        max_position_embeddings=1024,
    )
    return tf.LlamaForCausalLM(config).eval()


def _ids(model: nn.Module, rows: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, model.config.vocab_size, (rows, length), generator=g)


@torch.inference_mode()
def _cache_mb(model: nn.Module, x: torch.Tensor) -> float:
    """Megabytes of the key/value cache a forward over ``x`` leaves (what generate() keeps)."""
    cache = model(x, use_cache=True).past_key_values
    return (
        sum(
            t.numel() * t.element_size()
            for layer in cache.layers
            for t in (layer.keys, layer.values)
        )
        / 2**20
    )


def _weights_mb(model: nn.Module) -> float:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20


def _pruning_figures(name: str, model: nn.Module) -> list[Figure]:
    x = _ids(model, BATCH, LENGTH, seed=1)
    importance = Importance.for_data(model, _ids(model, 4, 128, seed=2), batch_size=4)
    dense_params, dense_cache = count_params(model), _cache_mb(model, x)
    figures = []
    for sparsity in SPARSITIES:
        plan = importance.plan(head_sparsity=sparsity, neuron_sparsity=sparsity)
        small = plan.apply(copy.deepcopy(model), in_memory=True).eval()  # GPT-2 heads: in memory
        dense_ms, small_ms, speedup = paired(
            lambda: model(x, use_cache=False), lambda m=small: m(x, use_cache=False), ROUNDS
        )
        ratio = dense_params / count_params(small)
        target = 0.8 * ratio
        pct = int(sparsity * 100)
        kept = plan.summary(model).iloc[0]
        shape = f"batch {BATCH} x {LENGTH}"
        figures += [
            Figure(
                f"hf.{name}.{pct}pct.speedup",
                speedup,
                "x",
                f"dense {dense_ms:.4g} ms vs pruned {small_ms:.4g} ms per forward at {shape}, "
                f"{torch.get_num_threads()} threads, median of {ROUNDS} interleaved rounds; "
                f"{kept.heads_kept}/{kept.heads} heads, {kept.neurons_kept}/{kept.neurons} neurons kept",
                "" if QUICK else f">= {target:.3g} (80% of the parameter ratio)",
                None if QUICK else bool(speedup >= target),
            ),
            Figure(
                f"hf.{name}.{pct}pct.param_ratio",
                ratio,
                "x",
                f"{dense_params:,} dense / {count_params(small):,} pruned parameters",
            ),
            Figure(
                f"hf.{name}.{pct}pct.weights",
                _weights_mb(small) / _weights_mb(model),
                "x of dense",
                f"{_weights_mb(small):.0f} MB of {_weights_mb(model):.0f} MB (parameters + buffers)",
            ),
            Figure(
                f"hf.{name}.{pct}pct.kv_cache",
                _cache_mb(small, x) / dense_cache,
                "x of dense",
                f"key/value cache after one forward at {shape}: {_cache_mb(small, x):.0f} MB of "
                f"{dense_cache:.0f} MB",
            ),
        ]
        del small
    return figures


def _importance_figures() -> list[Figure]:
    model = _gpt2()
    rows, length = CALIBRATION
    ids = _ids(model, rows, length, seed=3)
    with torch.inference_mode():  # the floor: the same forwards, no hooks, no head
        t0 = time.perf_counter()
        for start in range(0, rows, 8):
            model.base_model(ids[start : start + 8])
        plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    importance = Importance.for_data(model, ids, batch_size=8)
    seconds = time.perf_counter() - t0
    assert importance.tokens == rows * length
    what = (
        f"{len(importance.heads)} heads, {len(importance.neurons):,} neurons, {len(importance.layers)} "
        f"layers of a {count_params(model) / 1e6:.0f}M GPT-2 on {rows} x {length} tokens, "
        f"{torch.get_num_threads()} threads"
    )
    return [
        Figure(
            "hf.importance.gpt2_124M.time",
            seconds,
            "s",
            f"activation importance of {what}",
            "" if QUICK else "<= 30",
            None if QUICK else bool(seconds <= 30),
        ),
        Figure(
            "hf.importance.gpt2_124M.overhead",
            seconds / plain,
            "x",
            f"importance {seconds:.3g} s vs {plain:.3g} s for the same forwards without hooks (the floor)",
        ),
    ]


def run() -> list[Figure]:
    figures = _importance_figures()
    for name, build in (("gpt2_small", _gpt2), ("llama_like", _llama)):
        figures += _pruning_figures(name, build())
    return figures
