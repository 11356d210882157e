"""Supernet figures: training time of the default recipe, subnet quality without retraining,
weight sharing against standalone training, and the forward overhead of elasticity.

Run: ``.venv/bin/python -m bench supernet`` (several minutes on 2 cores).
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F

from bench._report import Figure
from nasviz import objectives
from nasviz.data import digits, tasks
from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer, Supernet, train_supernet

TRAIN_TARGET_S = {"mlp": 60.0, "cnn": 180.0}


def _train_alone(
    model: torch.nn.Module, data, epochs: int, batch_size: int = 64, lr: float = 3e-3, seed: int = 0
) -> None:
    """The same optimizer, schedule and batches as the supernet recipe, for one static model."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    X, y = data.train.X, data.train.y
    steps_per_epoch = math.ceil(len(y) / batch_size)
    total, step = epochs * steps_per_epoch, 0
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(
            len(y), generator=torch.Generator().manual_seed(seed * 100_003 + epoch)
        )
        for b in range(steps_per_epoch):
            idx = order[b * batch_size : (b + 1) * batch_size]
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            opt.zero_grad()
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
            step += 1
    model.eval()


def _paired_ratios(net, static, arch, x: torch.Tensor, seconds: float) -> tuple[list[float], float]:
    """Per-call ratios (supernet forward under ``subnet(arch)``) / (exported model forward),
    the two calls back to back in alternating order so that load drift hits both alike; and
    the exported model's median time in ms."""
    ratios, plain = [], []
    with torch.no_grad(), net.subnet(arch):
        for _ in range(3):  # warm-up: BN re-calibration, prepared weights, allocator
            net(x), static(x)
        t0 = time.perf_counter()
        static(x)
        calls = max(20, min(400, int(seconds / (2 * (time.perf_counter() - t0)))))
        for i in range(calls):
            first, second = (net, static) if i % 2 else (static, net)
            t0 = time.perf_counter()
            first(x)
            t1 = time.perf_counter()
            second(x)
            t2 = time.perf_counter()
            elastic, exported = (t1 - t0, t2 - t1) if first is net else (t2 - t1, t1 - t0)
            ratios.append(elastic / exported)
            plain.append(exported * 1e3)
    return ratios, statistics.median(plain)


def _overhead(name: str, net, x: torch.Tensor, what: str, seconds: float = 1.5) -> Figure:
    """The elasticity overhead figure: median over archs (largest, smallest, 3 random) of the
    median paired ratio; the note gives each arch's median, quartiles and export time."""
    net.eval()
    medians, notes = [], []
    for arch in [net.largest(), net.smallest(), *net.sample(3, n=3)]:
        ratios, plain_ms = _paired_ratios(net, net.export(arch), arch, x, seconds)
        q1, median, q3 = statistics.quantiles(ratios, n=4)
        medians.append(median)
        notes.append(f"{median:.3f} [{q1:.2f}-{q3:.2f}] at {plain_ms:.3g} ms")
    ratio = statistics.median(medians)
    return Figure(
        f"supernet.elastic_overhead.{name}",
        ratio,
        "x",
        f"subnet in the supernet vs its export, batch {len(x)}, {what}; median of paired "
        f"per-call ratios per arch [quartiles] (largest, smallest, 3 random): " + ", ".join(notes),
        "<= 1.10",
        ratio <= 1.10,
    )


def _family(name: str, cls, data) -> list[Figure]:
    figures = []
    torch.manual_seed(0)
    net = cls.for_data(data)
    init = {k: v.clone() for k, v in net.state_dict().items()}
    t0 = time.perf_counter()
    run = train_supernet(net, data, seed=0, eval_every=100)
    run.run()
    seconds = time.perf_counter() - t0
    epochs = run.engine.settings["epochs"]
    figures.append(
        Figure(
            f"supernet.train_time.{name}",
            seconds,
            "s",
            f"default recipe ({epochs} epochs), digits, 1 torch thread",
            f"<= {TRAIN_TARGET_S[name]:.0f}",
            seconds <= TRAIN_TARGET_S[name],
        )
    )
    acc = objectives.accuracy(data)
    largest, smallest = acc(net, net.largest()), acc(net, net.smallest())
    randoms = [acc(net, a) for a in net.sample(2024, n=20)]
    figures += [
        Figure(
            f"supernet.val_acc_largest.{name}",
            largest,
            "%",
            "validation accuracy, no retraining",
            ">= 95",
            largest >= 95,
        ),
        Figure(
            f"supernet.val_acc_smallest.{name}",
            smallest,
            "%",
            "validation accuracy, no retraining",
            ">= 90",
            smallest >= 90,
        ),
        Figure(
            f"supernet.val_acc_min_of_20_random.{name}",
            min(randoms),
            "%",
            "worst of 20 random subnets",
            ">= 85",
            min(randoms) >= 85,
        ),
    ]
    # weight sharing pays: 5 archs from the supernet vs the same archs trained alone (same
    # init, epochs, batches and schedule; each at the better of the supernet's learning rate
    # and the base default, so a rate tuned for the supernet cannot handicap them)
    archs = net.sample(7, n=5)
    fresh = cls.for_data(data)
    fresh.load_state_dict(init)
    rates = sorted({run.engine.settings["lr"], Supernet.default_lr})
    gaps = []
    for arch in archs:
        alone = []
        for lr in rates:
            model = fresh.export(arch)
            _train_alone(model, data, epochs, lr=lr)
            alone.append(objectives.evaluate_accuracy(model, data))
        gaps.append(max(alone) - acc(net, arch))
    worst = max(gaps)
    figures.append(
        Figure(
            f"supernet.sharing_gap_max_of_5.{name}",
            worst,
            "points",
            f"standalone (best of lr {', '.join(f'{r:g}' for r in rates)}) minus supernet "
            f"accuracy, same archs and epochs (mean {statistics.mean(gaps):+.2f})",
            "<= 2",
            worst <= 2,
        )
    )
    x = data.val.X[:256]
    x = torch.cat([x] * math.ceil(256 / len(x)))[:256]
    figures.append(_overhead(name, net, x, "trained (BN re-calibrated per subnet)"))
    return figures


def _transformer_overhead() -> list[Figure]:
    data = tasks(n_per_task=100)
    figures = []
    for moe in (False, True):
        torch.manual_seed(0)
        net = ElasticTransformer.for_data(data, moe=moe)
        x = torch.randint(0, data.vocab_size, (256, data.input_shape[0]))
        name = "transformer_moe" if moe else "transformer"
        figures.append(_overhead(name, net, x, "untrained"))
    return figures


def run() -> list[Figure]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: intra-op threads only add contention
    try:
        figures = _family("mlp", ElasticMLP, digits())
        figures += _family("cnn", ElasticCNN, digits())
        figures += _transformer_overhead()
    finally:
        torch.set_num_threads(before)
    return figures
