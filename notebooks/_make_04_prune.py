"""Generates notebooks/04_prune.ipynb."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# Pruning you can see, compare and turn into real speed

Pruning sets weights to zero. Whether that makes a model *smaller or faster* depends on which
weights go: scattered single weights (**unstructured**) save nothing in a dense kernel, whole
channels or neurons (**structured**) can be cut out for good. In nasviz, masks are soft: you
compute them, look at them, compare them, and only then apply or shrink.

We prune a subnet exported from an `ElasticMLP` supernet, trained on scikit-learn's digits.
"""),
    params("""
seed = 0
epochs = 10                       # training of the dense subnet
sparsities = [0.25, 0.5, 0.75, 0.9]
gradual_final = 0.9               # final sparsity of gradual pruning
lottery_rounds = 3
"""),
    code("""
import copy

import plotly.express as px
import torch

import nasviz
from nasviz import prune
from nasviz.objectives import count_params, evaluate_accuracy, measure_latency
from nasviz.supernet import ElasticMLP

torch.manual_seed(seed)
data = nasviz.data.digits(seed=seed, flat=True)
net = ElasticMLP.for_data(data)
model = net.export(net.space.largest())   # a plain nn.Sequential of Linear + ReLU


def train(m, epochs=epochs, callback=None):
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    step = 0
    for _ in range(epochs):
        for X, y in data.train.loader(64, shuffle=True, seed=seed):
            loss = torch.nn.functional.cross_entropy(m(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if callback is not None:
                callback(step)
            step += 1
    return evaluate_accuracy(m, data.val)


print(model)
print(f"dense accuracy: {train(model):.1f}%  ({count_params(model):,} params)")
"""),
    md("""
## Masks are soft

`prune.magnitude` returns `Masks` (parameter name -> bool tensor) and leaves the model alone.
`stats()` is a DataFrame with one row per layer. Global scope ranks all weights together, so
layers end up with different sparsities.
"""),
    code("""
masks = prune.magnitude(model, 0.75, scope="global")
masks.stats()
"""),
    code("""
erk = prune.random(model, 0.75, distribution="erk")
print("pruned by both magnitude and ERK random:", f"{masks.overlap(erk):.1%}")
print(prune.savings(model, masks))
"""),
    md("""
The last line is the honest part: 75% of the weights are zero, and a dense forward pass does
exactly the same work. Structured masks remove whole neurons, and `shrink` turns them into a
smaller dense model with the same outputs:
"""),
    code("""
structured = prune.channels(model, 0.5)
small = prune.shrink(model, structured)
masked = structured.apply(copy.deepcopy(model))
x = data.val.X[:256]
print("same outputs:", torch.allclose(small(x), masked(x), atol=1e-5))
dense_ms = measure_latency(model, (256, 64), threads=1).median_ms
small_ms = measure_latency(small, (256, 64), threads=1).median_ms
print(f"params {count_params(model):,} -> {count_params(small):,}; latency {dense_ms:.2f} -> {small_ms:.2f} ms")
"""),
    md("""
## Magnitude vs random vs structured

A sweep is a background run like a search: `start()` returns at once, `wait()` blocks, and
`results` is a DataFrame on the search's axes (accuracy, `params`, `macs` of what dense
inference really runs). Here we run it in the notebook's thread with `run()`.
"""),
    code("""
sweep = prune.sweep(model, ["magnitude", "random", "random-erk", "channels"], [0.0, *sparsities],
                    evaluate=nasviz.accuracy(data), input_shape=(1, 64))
sweep.run()
results = sweep.results
results[["method", "sparsity", "accuracy", "params", "nonzero_params", "macs"]]
"""),
    code("""
px.line(results, x="sparsity", y="accuracy", color="method", markers=True,
        title="accuracy after pruning (no fine-tuning)")
"""),
    code("""
px.scatter(results, x="params", y="accuracy", color="method", log_x=True,
           title="on the search's axes: only structured pruning moves left")
"""),
    md("""
## Gradual pruning during fine-tuning (Zhu & Gupta)

`prune.gradual` returns a callback for your own training loop. Sparsity follows the cubic
schedule s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n Δt))^3, pruning the smallest weights every Δt
steps; pruned weights stay masked while the optimizer runs.
"""),
    code("""
tuned = copy.deepcopy(model)
cb = prune.gradual(tuned, gradual_final, n_steps=10, every=4)  # reaches s_f after 40 steps
acc = train(tuned, epochs=3, callback=cb)  # 3 epochs = 60 steps
print(f"gradual {cb.masks.sparsity:.0%} sparse, fine-tuned accuracy {acc:.1f}%")
px.line(cb.history, x="step", y="sparsity", markers=True, title="cubic sparsity schedule")
"""),
    md("""
## Lottery tickets

Train, prune 20% of the remaining weights, rewind the survivors to their initial values, repeat.
Every round's masks are kept, so we can ask how much consecutive tickets agree.
"""),
    code("""
torch.manual_seed(seed)
fresh = net.export(net.space.largest())
for p in fresh.parameters():  # a new initialization, not the trained weights
    torch.nn.init.normal_(p, std=0.1)
tickets = prune.lottery(fresh, lambda m: train(m, epochs=2), rounds=lottery_rounds, rate=0.2)
tickets.table()
"""),
    md("""
## Looking at masks

`MaskViewer` draws the largest layer's mask on a canvas (1 bit per weight is sent to the
browser; big layers are shown as density tiles, scroll to zoom down to single weights), with a
sparsity bar per layer, a live sparsity slider, a method picker and a diff mode against a
second mask. Saved notebooks keep a static figure.
"""),
    code("""
from nasviz.ui import MaskViewer

viewer = MaskViewer(masks, model=model, other=erk)
viewer
"""),
    code("""
import tempfile
from pathlib import Path

path = masks.save(Path(tempfile.mkdtemp()) / "magnitude_75.npz")   # bit-packed npz, no pickle
assert prune.Masks.load(path, model=model) == masks
"""),
]

if __name__ == "__main__":
    out = write(Path(__file__).parent / "04_prune.ipynb", CELLS)
    print(f"wrote {out}")
