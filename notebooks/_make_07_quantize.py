"""Generates notebooks/07_quantize.ipynb."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# Quantization: fewer bits per weight, chosen per layer, searched with the architecture

**Quantization** stores a weight in `b` bits instead of 32: per output channel, a scale `s`
(and for *affine* codes a zero point `z`) maps the float range onto `2^b` integer codes,
`q = clamp(round(w / s) + z)`, and `w ≈ s · (q − z)`. Fewer bits mean a smaller model; how much
accuracy it costs depends on the layer.

This notebook measures that cost layer by layer (**sensitivity**), quantizes whole models after
training (**PTQ**), fine-tunes them for few bits (**QAT**), lets a search choose **bits per layer together with the architecture**
(SimQ-NAS), and gives the experts of a mixture-of-experts model **mixed bit-widths** by how much
the router uses them (MC-MoE).

Kernels are labelled everywhere: **real** means int8 arithmetic really runs (dynamic and static
int8 through PyTorch's fbgemm kernels, faster on CPU); **simulated** means the codes are stored
and dequantized, then the float kernel runs (any bit-width: right sizes and accuracy, no speed).
"""),
    params("""
seed = 0
epochs = 10  # supernet training epochs (ElasticMLP on digits: a few seconds)
sensitivity_bits = 2  # each layer alone at this many bits
search_budget = 16  # joint arch + bits evaluations
search_bits = [2, 4, 8]  # bit-widths the joint search may give a layer
moe_epochs = 3  # MoE classifier training epochs
average_bits = 3.0  # memory budget of the experts: mean bits per weight
qat_bits = 2  # quantization-aware fine-tuning to this many bits
qat_steps = 60  # QAT optimizer steps (a few seconds)
"""),
    code("""
import pandas as pd
import torch

import nasviz
from nasviz.objectives import accuracy, evaluate_accuracy
from nasviz.quant import (
    QuantSupernet,
    count_bytes,
    describe,
    model_bytes,
    quant_space,
    quantize,
    sensitivity,
)
from nasviz.supernet import ElasticMLP, train_supernet

torch.manual_seed(seed)
data = nasviz.data.digits(seed=seed)
net = ElasticMLP.for_data(data)
train_supernet(net, data, epochs=epochs, seed=seed).run()
net.eval()
model = net.export(net.largest())  # a plain torch model to quantize
print(f"full precision: {evaluate_accuracy(model, data.val):.1f}% on val, {count_bytes(model):,} bytes")
"""),
    md("""
## Sensitivity: which layers tolerate few bits?

Each layer alone is quantized (the others stay at full precision) and the model is measured
again; the drop in accuracy says how much that layer cares.
"""),
    code("""
from nasviz.viz import sensitivity_figure, sensitivity_info

sens = sensitivity(model, data, bits=sensitivity_bits)
sensitivity_figure(sensitivity_info(sens))
"""),
    md("""
## Post-training quantization

`quantize` returns a new model and never changes the one you give it. `describe` lists every
layer with its bits, scheme and kernel (real or simulated) and its exact bytes: codes plus
scales and zero points.
"""),
    code("""
variants = {
    "fp32": model,
    "int8 weight-only": quantize(model, 8),
    "int4 weight-only": quantize(model, 4),
    "int8 dynamic": quantize(model, mode="dynamic"),
}
rows = []
for name, m in variants.items():
    kernels = sorted(set(describe(m)["kernel"]))
    rows.append({"model": name, "kernel": "/".join(kernels), "accuracy": evaluate_accuracy(m, data.test), "bytes": count_bytes(m)})
pd.DataFrame(rows)
"""),
    code("""
describe(variants["int4 weight-only"])
"""),
    md("""
### Which layers run faster in int8?

Real int8 kernels pay a fixed cost per call (quantizing the input, requantizing the output), so a
narrow layer can run *slower* in int8 than in fp32 at batch 1, while a wide one runs faster.
`int8_speedups` times every Linear layer both ways on the inputs it receives from an example
(copies of the layers; the model is not changed). Time it at the batch size you deploy with and
quantize the layers that gain:
"""),
    code("""
from nasviz.quant import int8_speedups

speed = int8_speedups(model, data.test.X[:1])  # batch 1
faster = list(speed.index[speed["speedup"] > 1])
print("int8 where it is faster:", faster or "none")
speed
"""),
    md("""
## Quantization-aware fine-tuning (QAT)

At very few bits PTQ costs accuracy. `qat` fine-tunes a **copy** of the model whose weights are
*fake-quantized*: every forward pass sees them rounded to the `b`-bit grid, and the gradients
reach the float weights unchanged (a straight-through estimator), so training learns weights
that survive the rounding. It is a background run on nasviz's training layer, like `train`:
`start()` returns at once, `TrainingMonitor(run)` draws its loss live, `checkpoint=` makes it
resumable, and `teacher=model` distils from the full-precision model instead of (mostly)
learning from the labels. `run.quantized()` stores the result as `b`-bit codes; `model` itself is
never changed.
"""),
    code("""
from nasviz.quant import qat
from nasviz.ui import TrainingMonitor

run = qat(model, data, bits=qat_bits, steps=qat_steps, seed=seed)
monitor = TrainingMonitor(run)
run.start()
monitor
"""),
    code("""
run.wait()
compared = {
    "fp32": model,
    f"{qat_bits}-bit PTQ": quantize(model, qat_bits),
    f"{qat_bits}-bit QAT": run.quantized(),
}
pd.DataFrame(
    [
        {"model": name, "accuracy": evaluate_accuracy(m, data.test), "bytes": count_bytes(m)}
        for name, m in compared.items()
    ]
)
"""),
    md("""
## Architecture and bits, searched together

`quant_space(net)` adds one bit-width dimension per layer (`granularity="block"` for one per
block). `QuantSupernet` follows the supernet protocol over the joint space: each arch exports
its subnet, quantizes it with its bits, and the search's objectives measure that quantized
model. `model_bytes()` is exact and cheap.
"""),
    code("""
from nasviz.search import Search
from nasviz.ui import SearchDashboard

qnet = QuantSupernet(net, quant_space(net, bits=search_bits))
print(qnet.space)
search = Search(
    qnet,
    objectives=[accuracy(data.val), model_bytes()],
    strategy="nsga2",
    budget=search_budget,
    seed=seed,
)
dashboard = SearchDashboard(search)
dashboard
"""),
    code("""
search.start().wait()
front = search.pareto().sort_values("model_bytes")
front[[*qnet.space.names, "accuracy", "model_bytes"]]
"""),
    md("""
The bits of the most accurate front member, layer by layer (the strip ArchView shows):
"""),
    code("""
from nasviz.viz import bit_strip_figure, bit_strip_info

best = front.sort_values("accuracy").iloc[-1]
arch = {n: best[n] for n in qnet.space.names}
static = qnet.export(arch)
bit_strip_figure(bit_strip_info(describe(static)))
"""),
    md("""
In the Pareto explorer, the clicked point's architecture comes with the same strip below it
(here the most accurate front member is selected from code; click any other point):
"""),
    code("""
from nasviz.ui import ParetoExplorer

explorer = ParetoExplorer(search)
explorer.select([int(best["trial"])])
explorer
"""),
    md("""
## Mixed-precision experts (MC-MoE)

Experts that the router uses often and trusts (activation frequency × mean routing weight) get
more bits, rarely used ones fewer, under a memory budget; the choice is an integer program
(`scipy.optimize.milp`). Compared here with every expert at the same average.
"""),
    code("""
from nasviz.moe import MoEClassifier, RoutingRecorder, train_moe
from nasviz.quant import allocate_expert_bits, quantize_experts

tasks = nasviz.data.tasks(n_per_task=100, seed=seed)
torch.manual_seed(seed)
moe = MoEClassifier.for_data(tasks)
train_moe(moe, tasks, epochs=moe_epochs, seed=seed)
with RoutingRecorder(moe) as rec:
    moe(tasks.train.X)
allocation = allocate_expert_bits(moe, rec.stats(), average_bits=average_bits, bits=(2, 3, 4, 8))
uniform = allocation.assign(bits=round(average_bits))
print("fp32", evaluate_accuracy(moe, tasks.test))
print("mixed", evaluate_accuracy(quantize_experts(moe, allocation), tasks.test))
print("uniform", evaluate_accuracy(quantize_experts(moe, uniform), tasks.test))
allocation[["layer", "expert", "frequency", "mean_gate", "importance", "bits", "bytes"]]
"""),
]

if __name__ == "__main__":
    print(write(Path(__file__).with_name("07_quantize.ipynb"), CELLS))
