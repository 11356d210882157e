"""Quantization benchmarks, paired in one run:

* speed: dynamic int8 (torch.ao fbgemm, real kernels) vs fp32 on the MLP 64-1024^3-10 and on
  two GPT-2-small-sized blocks (768 wide, 12 heads, 3072 FFN; 8 tokens), batch 1 and 64, one
  torch thread, interleaved blocks (the median of per-block ratios), with every Linear layer in
  int8 and with only those ``int8_speedups`` times faster in int8 at that batch; weight bytes
  fp32 / int8;
  torchao 0.18's CPU int8 paths measured the same way when torchao is installed (the library
  choice);
* accuracy on digits: 8-bit weight-only (simulated), dynamic int8 (real) and static int8
  (real, on a trained ElasticCNN subnet) drop vs fp32;
* joint vs sequential (SimQ-NAS) on a trained ElasticCNN: the front of one arch+bits search vs
  "search at full precision, then quantize every front arch to 8 and to 4 bits", the same
  number of evaluations, hypervolume in (accuracy, model bytes) with one reference point;
  median of 3 seeds, at 30 and at 100 full-precision evaluations;
* mixed-precision experts (MC-MoE, milp) at an average of 3 bits vs uniform 3 bits on nasviz's
  MoE classifier (simulated kernels).

Run: ``.venv/bin/python -m bench quant`` (about 10-12 minutes on 2 loaded cores).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import itertools
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench._report import Figure
from bench.bench_prune import _paired
from nasviz.data import digits, tasks
from nasviz.moe import MoEClassifier, RoutingRecorder, train_moe
from nasviz.objectives import accuracy, evaluate_accuracy
from nasviz.quant import (
    QuantSupernet,
    allocate_expert_bits,
    describe,
    int8_speedups,
    model_bytes,
    quant_space,
    quantize,
    quantize_experts,
)
from nasviz.search import Search, hypervolume, pareto_mask
from nasviz.supernet import ElasticCNN, train_supernet

SEED = 0


# ---- speed ------------------------------------------------------------------------------------
def _mlp(width: int = 1024) -> nn.Module:
    """The MLP 64-width^3-10 (random weights; eval mode)."""
    torch.manual_seed(SEED)
    widths = (64, width, width, width)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10)).eval()


def _gpt2_blocks() -> nn.Module:
    import transformers as tf

    torch.manual_seed(SEED)
    config = tf.GPT2Config(vocab_size=512, n_positions=64, n_embd=768, n_layer=2, n_head=12)
    return tf.GPT2Model(config).eval()


class _Hidden(nn.Module):
    """GPT-2 blocks on token ids, returning the hidden states tensor (what is timed)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids).last_hidden_state


def _speed_figures() -> list[Figure]:
    figures = []
    cases = [("mlp", _mlp(), lambda b: torch.randn(b, 64)), ("gpt2", _gpt2_blocks(), None)]
    for name, model, make in cases:
        q = quantize(model, mode="dynamic")
        table = describe(q)
        codes = int(table["weights"].sum())
        figures.append(
            Figure(
                f"quant.weight_bytes_ratio.{name}",
                4 * codes / float(table["bytes"].sum()),
                "x",
                "fp32 weight bytes / int8 weight bytes incl. per-channel scales and zero points",
                ">= 4 on codes (scales add float64 + int64 per channel)",
                None,
            )
        )
        for batch in (1, 64):
            if make is None:
                x = torch.randint(0, 512, (batch, 8), generator=torch.Generator().manual_seed(0))
                dense, small = _Hidden(model), _Hidden(q)
            else:
                x, dense, small = make(batch), model, q
            fp_ms, q_ms, ratio = _paired(dense, small, x)
            figures.append(
                Figure(
                    f"quant.dynamic_int8_speedup.{name}.b{batch}",
                    ratio,
                    "x",
                    f"fp32 {fp_ms:.2f} ms vs int8 dynamic (real, fbgemm) {q_ms:.2f} ms, 1 thread",
                    ">= 1.8",
                    ratio >= 1.8,
                )
            )
            figures.append(_measured_choice(name, model, dense, x, batch))
    figures += _torchao_figures()
    return figures


def _measured_choice(
    name: str, model: nn.Module, dense: nn.Module, x: torch.Tensor, batch: int
) -> Figure:
    """fp32 vs int8 dynamic in only the layers ``int8_speedups`` timed faster in int8 at this
    batch (the rest stay fp32)."""
    speed = int8_speedups(model, x)
    faster = list(speed.index[speed["speedup"] > 1])
    slower = ", ".join(
        f"{n} ({speed.loc[n, 'speedup']:.2f}x)" for n in speed.index if n not in faster
    )
    what = f"int8_speedups timed {len(faster)} of {len(speed)} layers faster in int8"
    if not faster:  # nothing to quantize: the model stays fp32
        return Figure(
            f"quant.dynamic_int8_speedup_measured.{name}.b{batch}", 1.0, "x", f"{what}: {slower}"
        )
    chosen = quantize(model, mode="dynamic", include=faster)
    table = describe(chosen)
    ratio_bytes = 4 * int(table["weights"].sum()) / float(table["bytes"].sum())
    small = _Hidden(chosen) if isinstance(dense, _Hidden) else chosen
    fp_ms, q_ms, ratio = _paired(dense, small, x)
    return Figure(
        f"quant.dynamic_int8_speedup_measured.{name}.b{batch}",
        ratio,
        "x",
        f"fp32 {fp_ms:.2f} ms vs int8 dynamic (real, fbgemm) {q_ms:.2f} ms in only those: {what}, "
        f"1 thread; kept fp32: {slower or 'none'}; weight bytes {ratio_bytes:.2f}x fewer than fp32",
        ">= 1.8",
        ratio >= 1.8,
    )


def _torchao_figures() -> list[Figure]:
    """torchao's CPU int8 paths against fp32, measured like ours (only when it is installed)."""
    if importlib.util.find_spec("torchao") is None:
        print(
            "   torchao is not installed: its comparison is skipped (pip install torchao==0.18.0)"
        )
        return []
    with warnings.catch_warnings(), contextlib.redirect_stderr(None):
        warnings.simplefilter("ignore")
        from torchao.quantization import (
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            IntxWeightOnlyConfig,
            quantize_,
        )
        from torchao.quantization.granularity import PerAxis
    out = []
    base = _mlp()
    for label, config, batches in (
        ("int8_weight_only", Int8WeightOnlyConfig(), (1, 64)),
        ("int8_dynamic", Int8DynamicActivationInt8WeightConfig(), (1, 64)),
        (
            "int4_weight_only",
            IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerAxis(0)),
            (1,),
        ),
    ):
        model = copy.deepcopy(base)
        quantize_(model, config)
        for batch in batches:
            fp_ms, q_ms, ratio = _paired(base, model, torch.randn(batch, 64))
            out.append(
                Figure(
                    f"quant.torchao_{label}_speedup.mlp.b{batch}",
                    ratio,
                    "x",
                    f"fp32 {fp_ms:.2f} ms vs torchao {q_ms:.2f} ms, 1 thread (library choice)",
                )
            )
    return out


# ---- accuracy ---------------------------------------------------------------------------------
def _train_mlp(data, seed: int = SEED) -> nn.Module:
    """The 64-128-128-10 MLP trained 30 epochs on digits with a plain Adam loop."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 128),
        nn.ReLU(),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    X, y = data.train.X, data.train.y
    g = torch.Generator().manual_seed(seed)
    for _ in range(30):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _accuracy_figures(data, net: ElasticCNN) -> list[Figure]:
    mlp = _train_mlp(data)
    base = evaluate_accuracy(mlp, data.test)
    figures = []
    for label, model in (
        ("weight8_simulated", quantize(mlp, 8)),
        ("dynamic8_real", quantize(mlp, mode="dynamic")),
        ("weight4_simulated", quantize(mlp, 4)),
    ):
        drop = base - evaluate_accuracy(model, data.test)
        target = "<= 0.3" if "8" in label else ""
        figures.append(
            Figure(
                f"quant.digits_drop.mlp.{label}",
                drop,
                "points",
                f"fp32 test accuracy {base:.2f}%",
                target,
                drop <= 0.3 if target else None,
            )
        )
    static = net.export(net.largest())
    base = evaluate_accuracy(static, data.test)
    q = quantize(static, mode="static", calibration=data)
    drop = base - evaluate_accuracy(q, data.test)
    figures.append(
        Figure(
            "quant.digits_drop.cnn.static8_real",
            drop,
            "points",
            f"fp32 ElasticCNN largest subnet {base:.2f}%",
            "<= 0.3",
            drop <= 0.3,
        )
    )
    return figures


# ---- joint vs sequential ------------------------------------------------------------------------
def _points(frame, columns=("accuracy", "model_bytes")) -> np.ndarray:
    ok = frame[frame["state"] == "COMPLETE"]
    return ok[list(columns)].to_numpy(dtype=np.float64)


JOINT_SEEDS = (0, 1, 2)
JOINT_BUDGETS = (30, 100)  # full-precision evaluations of the sequential search


def _joint_vs_sequential(data, net: ElasticCNN, budget_fp: int, seed: int) -> dict:
    """One seed: the sequential front (full-precision search, then its front at 8 and 4 bits)
    and the joint search's, with the same number of evaluations; hypervolume in (accuracy,
    model bytes) with one reference point for both."""
    objectives = [accuracy(data.val), model_bytes()]
    directions = ["maximize", "minimize"]
    fp = Search(net, objectives=objectives, strategy="nsga2", budget=budget_fp, seed=seed)
    fp.start().wait()
    front = fp.pareto()
    sequential = [_points(fp.results)[pareto_mask(_points(fp.results), directions)]]
    for bits in (8, 4):
        for row in front.itertuples():
            arch = {n: fp.results.loc[row.Index, n] for n in net.space.names}
            q = quantize(net.export(arch), bits)
            sequential.append(
                np.array([[evaluate_accuracy(q, data.val), model_bytes()(q)]], dtype=np.float64)
            )
    seq = np.concatenate(sequential)
    evaluations = budget_fp + 2 * len(front)
    qnet = QuantSupernet(net, quant_space(net, bits=(3, 4, 8), granularity="block"))
    joint = Search(qnet, objectives=objectives, strategy="nsga2", budget=evaluations, seed=seed)
    joint.start().wait()
    jpts = _points(joint.results)
    both = np.concatenate([seq, jpts])
    ref = [both[:, 0].min() - 1.0, both[:, 1].max() * 1.1]
    return {
        "evaluations": evaluations,
        "ratio": hypervolume(jpts, directions, ref) / hypervolume(seq, directions, ref),
        "bytes": _min_bytes(jpts, 95.0) / _min_bytes(seq, 95.0),
    }


def _joint_figures(data, net: ElasticCNN) -> list[Figure]:
    figures = []
    for budget in JOINT_BUDGETS:
        runs = [_joint_vs_sequential(data, net, budget, seed) for seed in JOINT_SEEDS]
        ratio = float(np.median([r["ratio"] for r in runs]))
        ratios = ", ".join(f"{r['ratio']:.3f}" for r in runs)
        sizes = ", ".join(f"{r['bytes']:.2f}" for r in runs)
        suffix = "" if budget == JOINT_BUDGETS[0] else f".budget{budget}"
        figures += [
            Figure(
                f"quant.joint_vs_sequential.hypervolume_ratio{suffix}",
                ratio,
                "x",
                f"joint arch+bits search (bits 3/4/8 per block) vs full-precision search of "
                f"{budget} then its front at 8 and 4 bits (PTQ), the same evaluations "
                f"({', '.join(str(r['evaluations']) for r in runs)}), NSGA-II; hypervolume in "
                f"(accuracy, bytes), median of seeds {JOINT_SEEDS}: "
                f"{ratios}",
                "> 1",
                ratio > 1,
            ),
            Figure(
                f"quant.joint_vs_sequential.min_bytes_at_95pct{suffix}",
                float(np.median([r["bytes"] for r in runs])),
                "x",
                f"smallest model with >= 95% val accuracy: joint / sequential, median of seeds "
                f"(per seed {sizes})",
            ),
        ]
    return figures


def _min_bytes(points: np.ndarray, acc: float) -> float:
    ok = points[points[:, 0] >= acc]
    return float(ok[:, 1].min()) if len(ok) else float("nan")


# ---- mixed-precision experts ----------------------------------------------------------------------
def _moe_figures() -> list[Figure]:
    data = tasks(seed=SEED)
    torch.manual_seed(SEED)
    model = MoEClassifier.for_data(data)
    train_moe(model, data, epochs=8, seed=SEED)
    with RoutingRecorder(model) as rec:
        model(data.train.X)
    stats = rec.stats()
    base = evaluate_accuracy(model, data.test)

    def acc(allocation) -> float:
        return evaluate_accuracy(quantize_experts(model, allocation), data.test)

    mixed = allocate_expert_bits(model, stats, average_bits=3.0, bits=(2, 3, 4, 8))
    acc_mixed, acc_uniform = acc(mixed), acc(mixed.assign(bits=3))
    # at 2.5 bits on average the budget forces a mix: the same widths given by importance or
    # against it (every expert has as many weights, so both use the same bytes)
    tight = allocate_expert_bits(model, stats, average_bits=2.5, bits=(2, 3, 4))
    order = np.argsort(-tight["importance"].to_numpy(), kind="stable")
    widths = np.sort(tight["bits"].to_numpy())[::-1]
    against = tight.copy()
    against.loc[against.index[order], "bits"] = widths[::-1]
    acc_tight, acc_against, acc_two = acc(tight), acc(against), acc(tight.assign(bits=2))
    with torch.no_grad():
        ref = model(data.test.X)
        err = {
            name: float(
                (quantize_experts(model, a)(data.test.X) - ref).pow(2).mean() / ref.pow(2).mean()
            )
            for name, a in (("by", tight), ("against", against))
        }
    return [
        Figure(
            "quant.moe_mixed3_minus_uniform3",
            acc_mixed - acc_uniform,
            "points",
            f"MC-MoE mixed ({','.join(map(str, mixed['bits']))}) {acc_mixed:.2f}% vs uniform 3-bit "
            f"{acc_uniform:.2f}% (fp32 {base:.2f}%), simulated",
            "> 0",
            acc_mixed > acc_uniform,
        ),
        Figure(
            "quant.moe_mixed2.5_by_importance_minus_against",
            acc_tight - acc_against,
            "points",
            f"2.5 bits on average ({','.join(map(str, tight['bits']))}): by importance "
            f"{acc_tight:.2f}% vs the same widths against importance {acc_against:.2f}% "
            f"(uniform 2-bit {acc_two:.2f}%), simulated",
        ),
        Figure(
            "quant.moe_mixed2.5_logit_error_against_over_by_importance",
            err["against"] / err["by"],
            "x",
            f"relative squared logit error vs fp32: against importance {err['against']:.2e} / "
            f"by importance {err['by']:.2e} (same bytes)",
            "> 1",
            err["against"] > err["by"],
        ),
    ]


def run() -> list[Figure]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        figures = _speed_figures()
        data = digits(seed=SEED)
        torch.manual_seed(SEED)
        net = ElasticCNN.for_data(data)
        train_supernet(net, data, seed=SEED).run()
        net.eval()
        figures += _accuracy_figures(data, net)
        figures += _joint_figures(data, net)
        figures += _moe_figures()
    finally:
        torch.set_num_threads(before)
    return figures
