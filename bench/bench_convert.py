"""Bring-your-own-model benchmarks (``nasviz.supernet.convert``), side by side in one run:

* **cost** of converting a GPT-2-small-sized model (124M parameters, built from a config):
  wall time (target <= 10 s) and the process memory it adds, as a share of the model's weights
  (target <= 10%: the supernet shares the model's tensors, nothing is copied);
* **elastic vs exported forward** for the converted ResNet-style CNN (digits, batch 256) and the
  converted GPT-2 (batch 4 x 128 tokens), at the largest subnet and at a half-width subnet:
  the supernet's forward against the exported model's, paired and interleaved (target
  <= 1.10);
* **quality** on digits: a ResNet-style CNN trained normally ("pre-trained"), converted, and
  fine-tuned elastically (sandwich rule, distilling from the original); its largest subnet
  against the original (target: within 0.5 point), and subnets at about half the MACs against
  the same architecture trained from scratch for the same total steps (target: within 2
  points), median over 3 seeds;
* **search** on the fine-tuned converted CNN (seed 0): every distinct subnet's validation
  accuracy and MACs tabulated (as ``Search(sn, objectives=[accuracy(val), macs(...)])``
  evaluates them), then random search and the predictor search it by look-up
  (``bench.bench_search``'s harness): evaluations to reach 95% of the exact reference
  hypervolume, predictor vs random (target >= 3x fewer), median over 10 search seeds.

``BENCH_CONVERT_SCALE=quick`` runs the same code on small shapes (figures then carry no
target) to check the benchmark works.

Run: ``.venv/bin/python -m bench convert`` (a few minutes on 2 idle cores; about 2 GB).
"""

from __future__ import annotations

import ctypes
import gc
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench._report import Figure
from bench._timing import paired
from bench.bench_search import GOAL, Table, _processes, _speedup, cap, evals_to, table_run
from nasviz.data import digits
from nasviz.objectives import evaluate_accuracy
from nasviz.supernet import convert, train_supernet
from nasviz.training import Accuracy, evaluate, train

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "convert"))
from convert_models import ResNet  # the tests' user model: one definition

QUICK = os.environ.get("BENCH_CONVERT_SCALE", "full") == "quick"
ROUNDS = 5  # interleaved rounds per timed pair
SEEDS = (0,) if QUICK else (0, 1, 2)
PRETRAIN_EPOCHS, FINETUNE_EPOCHS = (2, 1) if QUICK else (15, 10)
TOKENS = (2, 32) if QUICK else (4, 128)  # GPT-2 forward: batch x tokens
SEARCH_SEEDS = tuple(range(2 if QUICK else 10))


def _rss_mb() -> float:
    """This process's resident memory (Linux), in MB, after handing freed heap back to the
    system (glibc keeps freed blocks of large temporaries otherwise)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _gpt2() -> nn.Module:
    import transformers as tf

    torch.manual_seed(0)
    small = {"n_layer": 2, "n_embd": 64, "n_head": 4} if QUICK else {}
    return tf.GPT2LMHeadModel(tf.GPT2Config(bos_token_id=1, eos_token_id=2, **small)).eval()


def _half(sn) -> dict:
    """The arch at width 0.5 everywhere (depth kept full)."""
    return sn.largest().replace(**{n: 0.5 for n in sn.space.names if n.startswith("width.")})


def _overhead(name: str, sn, x: torch.Tensor, what: str) -> list[Figure]:
    figures = []
    for label, arch in (("largest", sn.largest()), ("half_width", _half(sn))):
        static = sn.export(arch).eval()

        def elastic(arch=arch):
            with sn.subnet(arch):
                return sn(x)

        elastic_ms, static_ms, ratio = paired(elastic, lambda m=static: m(x), ROUNDS)
        figures.append(
            Figure(
                f"convert.{name}.{label}.elastic_vs_export",
                ratio,
                "x",
                f"supernet {elastic_ms:.4g} ms vs exported {static_ms:.4g} ms per forward of the "
                f"{label.replace('_', ' ')} subnet, {what}, {torch.get_num_threads()} threads, "
                f"median of {ROUNDS} interleaved rounds",
                "" if QUICK else "<= 1.10",
                None if QUICK else bool(ratio <= 1.10),
            )
        )
    return figures


def _gpt2_figures() -> list[Figure]:
    model = _gpt2()
    tensors = {t.data_ptr(): t for t in model.state_dict().values()}  # tied weights once
    weights_mb = sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20
    example = torch.randint(
        3, model.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0)
    )
    gc.collect()
    before = _rss_mb()
    t0 = time.perf_counter()
    sn = convert(model, example).eval()
    seconds = time.perf_counter() - t0
    gc.collect()
    extra = (_rss_mb() - before) / weights_mb
    params = sum(p.numel() for p in model.parameters()) / 1e6
    size = f"{params:.0f}M-parameter GPT-2 ({weights_mb:.0f} MB of weights)"
    figures = [
        Figure(
            "convert.gpt2_124M.time",
            seconds,
            "s",
            f"convert(model, example) of a {size}: {len(sn.space.names)} dimensions {sn.space.names}",
            "" if QUICK else "<= 10",
            None if QUICK else bool(seconds <= 10),
        ),
        Figure(
            "convert.gpt2_124M.memory",
            extra,
            "x of the weights",
            f"resident memory convert added: {extra * weights_mb:.0f} MB for a {size}",
            "" if QUICK else "<= 0.10",
            None if QUICK else bool(extra <= 0.10),
        ),
    ]
    rows, length = TOKENS
    x = torch.randint(
        3, model.config.vocab_size, (rows, length), generator=torch.Generator().manual_seed(1)
    )
    figures += _overhead("gpt2_124M", sn, x, f"batch {rows} x {length} tokens")
    return figures


def _accuracy(model, data) -> float:
    return evaluate(model, data.test, [Accuracy()])["accuracy"]


def _table(sn, data) -> Table:
    """Every arch of ``sn`` with the validation accuracy and MACs of its subnet (one evaluation
    per distinct subnet)."""
    distinct = list(dict.fromkeys(sn.canonical(a) for a in sn.space))
    shape = (1, *data.input_shape)
    rows = {
        a: (evaluate_accuracy(sn, data.val, a), float(sn.count_macs(a, shape))) for a in distinct
    }
    archs = list(sn.space)
    canonical = {a: sn.canonical(a) for a in archs}
    values = np.array([rows[canonical[a]] for a in archs])  # (archs, 2)
    return Table(
        None,
        sn.space,
        canonical.__getitem__,  # picklable, for the worker processes
        {"accuracy": values[:, 0], "macs": values[:, 1]},
        {a: i for i, a in enumerate(archs)},
    )


def _search_task(task: tuple[Table, str, int]) -> np.ndarray:
    table, strategy, seed = task
    torch.set_num_threads(1)
    return table_run(table, strategy, seed)


def _search_figures(sn, data) -> list[Figure]:
    t0 = time.perf_counter()
    table = _table(sn.eval(), data)
    tabulated = time.perf_counter() - t0
    strategies = ("random", "predictor")
    tasks = [(table, s, seed) for s in strategies for seed in SEARCH_SEEDS]
    with _processes() as pool:
        traces = list(pool.map(_search_task, tasks))
    limit = {s: cap(table, s) for s in strategies}
    needed = {s: [] for s in strategies}
    for (_, s, _), trace in zip(tasks, traces, strict=True):
        needed[s].append(evals_to(trace, GOAL, limit[s]))
    figures = _speedup(needed, "random", limit, 3.0)
    subnets = len(set(map(table.canonical, table.space)))
    about = (
        f"; converted ResNet-style CNN fine-tuned on digits (seed 0): {table.space.size} archs, "
        f"{subnets} distinct subnets tabulated in {tabulated:.0f} s; {len(SEARCH_SEEDS)} search "
        f"seeds; evals to 95%: random {needed['random']}, predictor {needed['predictor']}"
    )
    figures[0] = replace(figures[0], compared_with=figures[0].compared_with + about)
    if QUICK:
        figures = [replace(f, target="", met=None) for f in figures]
    return [replace(f, name=f"convert.search.{f.name}") for f in figures]


def _quality(seed: int) -> dict[str, float]:
    """One seed: the original, its largest subnet after elastic fine-tuning, and the half-MACs
    subnets against the same architectures trained from scratch for the same total steps."""
    data = digits(seed=seed)
    torch.manual_seed(seed)
    model = ResNet(width=16)
    train(model, data, epochs=PRETRAIN_EPOCHS, batch_size=64, lr=1e-2, seed=seed).run()
    model.eval()
    original = _accuracy(model, data)
    sn = convert(model, data.val.X[:8])
    train_supernet(
        sn,
        data,
        epochs=FINETUNE_EPOCHS,
        batch_size=64,
        lr=1e-3,
        teacher="original",
        seed=seed,
        calibration_samples=256,  # re-calibrating 1,600 subnets for the search table
    ).run()
    sn.eval()
    shape = (1, 1, 8, 8)
    largest_macs = sn.count_macs(sn.largest(), shape)
    archs = sorted(
        {sn.canonical(a) for a in sn.sample(seed, n=200)},
        key=lambda a: abs(sn.count_macs(a, shape) / largest_macs - 0.5),
    )[:3]
    gaps = []
    for arch in archs:
        elastic = _accuracy(sn.export(arch).eval(), data)
        torch.manual_seed(seed)
        fresh = convert(ResNet(width=16), data.val.X[:8])  # the same arch, random weights
        scratch = fresh.export(arch)
        scratch.train()
        epochs = PRETRAIN_EPOCHS + FINETUNE_EPOCHS
        train(scratch, data, epochs=epochs, batch_size=64, lr=1e-2, seed=seed).run()
        gaps.append(_accuracy(scratch.eval(), data) - elastic)
    return {
        "net": sn,
        "data": data,
        "original": original,
        "largest": _accuracy(sn.export(sn.largest()).eval(), data),
        "half_gap": statistics.median(gaps),
        "half_macs": statistics.median(sn.count_macs(a, shape) / largest_macs for a in archs),
    }


def _quality_figures(runs: list[dict]) -> list[Figure]:
    drop = statistics.median(r["original"] - r["largest"] for r in runs)
    gap = statistics.median(r["half_gap"] for r in runs)
    spread = lambda key: "/".join(f"{r[key]:.1f}" for r in runs)  # noqa: E731
    recipe = (
        f"ResNet-style CNN (width 16) on digits, {PRETRAIN_EPOCHS} epochs pre-training, "
        f"{FINETUNE_EPOCHS} epochs elastic fine-tuning (teacher='original'); seeds {SEEDS}"
    )
    return [
        Figure(
            "convert.quality.largest_drop",
            drop,
            "points",
            f"original minus the largest subnet after fine-tuning, test accuracy, median over seeds "
            f"(original {spread('original')}%, largest {spread('largest')}%); {recipe}",
            "" if QUICK else "<= 0.5",
            None if QUICK else bool(drop <= 0.5),
        ),
        Figure(
            "convert.quality.half_macs_gap",
            gap,
            "points",
            f"from-scratch minus elastic accuracy of the 3 sampled subnets closest to half the "
            f"MACs (median {statistics.median(r['half_macs'] for r in runs):.2f}x), trained from "
            f"scratch for {PRETRAIN_EPOCHS + FINETUNE_EPOCHS} epochs; per seed {spread('half_gap')}; "
            f"{recipe}",
            "" if QUICK else "<= 2",
            None if QUICK else bool(gap <= 2),
        ),
    ]


def _cnn_overhead_figures() -> list[Figure]:
    data = digits(seed=0)
    torch.manual_seed(0)
    sn = convert(ResNet(width=16), data.val.X[:8]).eval()
    x = data.train.X[:256]
    return _overhead("resnet", sn, x, "batch 256 digits")


def run() -> list[Figure]:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    figures = _gpt2_figures() + _cnn_overhead_figures()
    runs = [_quality(seed) for seed in SEEDS]
    return figures + _quality_figures(runs) + _search_figures(runs[0]["net"], runs[0]["data"])
