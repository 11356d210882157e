"""Supernet figures: training time of the default recipe, subnet quality without retraining,
weight sharing against standalone training, and the forward overhead of elasticity.

Run: ``.venv/bin/python -m bench supernet`` (about 3-5 minutes on 2 cores).
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
from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer, train_supernet

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


def _overhead(net, x: torch.Tensor, archs, rounds: int = 5) -> tuple[float, str]:
    """Median over archs of (supernet forward time under subnet(arch)) / (exported model's),
    and the per-arch ratios with the exported model's time, in words."""
    net.eval()
    ratios, notes = [], []
    for arch in archs:
        static = net.export(arch)
        elastic, plain = [], []
        for _ in range(rounds):  # interleaved so drift in machine load hits both alike
            with net.subnet(arch):
                elastic.append(
                    objectives.measure_latency(
                        net, tuple(x.shape), repeats=40, warmup=5, threads=1, dtype=x.dtype
                    ).median_ms
                )
            plain.append(
                objectives.measure_latency(
                    static, tuple(x.shape), repeats=40, warmup=5, threads=1, dtype=x.dtype
                ).median_ms
            )
        ratios.append(statistics.median(elastic) / statistics.median(plain))
        notes.append(f"{ratios[-1]:.2f} at {statistics.median(plain):.3g} ms")
    return statistics.median(ratios), "per arch (largest, smallest, random): " + ", ".join(notes)


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
    # weight sharing pays: 5 archs from the supernet vs the same archs trained alone
    archs = net.sample(7, n=5)
    fresh = cls.for_data(data)
    fresh.load_state_dict(init)
    gaps = []
    for arch in archs:
        alone = fresh.export(arch)
        _train_alone(alone, data, epochs)
        gaps.append(objectives.evaluate_accuracy(alone, data) - acc(net, arch))
    worst = max(gaps)
    figures.append(
        Figure(
            f"supernet.sharing_gap_max_of_5.{name}",
            worst,
            "points",
            f"standalone minus supernet accuracy, same archs and epochs (mean {statistics.mean(gaps):+.2f})",
            "<= 2",
            worst <= 2,
        )
    )
    x = data.val.X[:256]
    x = torch.cat([x] * math.ceil(256 / len(x)))[:256]
    ratio, notes = _overhead(net, x, [net.largest(), net.smallest(), net.sample(3)])
    figures.append(
        Figure(
            f"supernet.elastic_overhead.{name}",
            ratio,
            "x",
            f"subnet in the supernet vs its export, batch 256; {notes}",
            "<= 1.10",
            ratio <= 1.10,
        )
    )
    return figures


def _transformer_overhead() -> list[Figure]:
    data = tasks(n_per_task=100)
    figures = []
    for moe in (False, True):
        torch.manual_seed(0)
        net = ElasticTransformer.for_data(data, moe=moe)
        x = torch.randint(0, data.vocab_size, (256, data.input_shape[0]))
        ratio, notes = _overhead(net, x, [net.largest(), net.smallest(), net.sample(3)], rounds=3)
        name = "transformer_moe" if moe else "transformer"
        figures.append(
            Figure(
                f"supernet.elastic_overhead.{name}",
                ratio,
                "x",
                f"untrained, batch 256; {notes}",
                "<= 1.10",
                ratio <= 1.10,
            )
        )
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
