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

We prune a **searched subnet**: a quick search of an `ElasticMLP` supernet trained on
scikit-learn's digits picks the most accurate subnet on its Pareto front, and every pruned
variant is measured with the search's own objectives, so both sit on one accuracy / size front.
"""),
    params("""
seed = 0                          # (≥ 0)
epochs = 5                        # supernet training, the searched subnets' quality (≥ 1)
search_budget = 12                # subnets the quick search evaluates (≥ 1)
sparsities = [0.25, 0.5, 0.75, 0.9]
gradual_final = 0.9               # final sparsity of gradual pruning (< 1)
lottery_rounds = 3                # (≥ 1)
out_dir = "runs/04_prune"         # the search's journal and the saved masks go here
"""),
    code("""
import copy
from pathlib import Path

import plotly.express as px
import torch

import nasviz
from nasviz import prune
from nasviz.objectives import accuracy, count_params, evaluate_accuracy, measure_latency, params
from nasviz.search import Search
from nasviz.supernet import ElasticMLP, train_supernet
from nasviz.viz import compression_figure, styled

torch.manual_seed(seed)
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
data = nasviz.data.digits(seed=seed, flat=True)
net = ElasticMLP.for_data(data)
train_supernet(net, data, epochs=epochs, seed=seed).run()

objectives = [accuracy(data.val), params()]   # the search's axes, reused by the pruning sweep
journal = out / "search.journal"
journal.unlink(missing_ok=True)   # a fresh search on every run of this notebook
search = Search(net, objectives=objectives, strategy="random", budget=search_budget,
                storage=str(journal), seed=seed)
search.start().wait()   # a background run; here we simply wait for it
front = search.pareto().sort_values("params")
front[["trial", "accuracy", "params"]].round(2)
"""),
    md("""
The subnet we prune is the most accurate one on the front, exported as a plain
`nn.Sequential` of Linear + ReLU (its weights are the supernet's, not retrained).
"""),
    code("""
best = front.loc[front["accuracy"].idxmax()]
arch = search.space.validate({name: best[name] for name in search.space.names})
model = net.export(arch)
dense_accuracy = evaluate_accuracy(model, data.val)
print(model)
print(f"searched subnet: {dense_accuracy:.1f}% with {count_params(model):,} params")


def train(m, epochs=2, callback=None):
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(epochs):
        for X, y in data.train.loader(64, shuffle=True, seed=seed):
            loss = torch.nn.functional.cross_entropy(m(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if callback is not None:
                callback()
    return evaluate_accuracy(m, data.val)
"""),
    md("""
## Masks are soft

`prune.magnitude` returns `Masks` (parameter name -> bool tensor) and leaves the model alone.
`stats()` is a DataFrame with one row per layer. Global scope ranks all weights together, so
layers end up with different sparsities.
"""),
    code("""
masks = prune.magnitude(model, 0.75, scope="global")
masks.stats().round(3)
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
masked_ms, small_ms = (measure_latency(m, (256, 64), threads=1).median_ms for m in (masked, small))
print(f"params {count_params(model):,} -> {count_params(small):,}; "
      f"latency {masked_ms:.2f} ms (masked) -> {small_ms:.2f} ms (shrunk)")
structured.remove(masked)   # masks come off again, restoring the original weights
print("masks left on the copy:", prune.applied(masked))
"""),
    md("""
## Magnitude vs random vs structured, on the search's axes

A sweep is a background run like a search (`start()` returns at once, `wait()` blocks; here
`run()` runs it in the notebook's thread). It measures every pruned variant **after shrinking**
with the search's own objectives, so `results` has the same `accuracy` and `params` columns as
`search.results`. `sparsity` is what was asked for (for `channels`, the fraction of neurons);
`weight_sparsity` is the fraction of weights actually removed.
"""),
    code("""
sweep = prune.sweep(model, ["magnitude", "random", "random-erk", "channels"], [0.0, *sparsities],
                    objectives)
sweep.run()
results = sweep.results
results[["method", "sparsity", "weight_sparsity", "accuracy", "params", "nonzero_params"]].round(3)
"""),
    code("""
styled(px.line(results, x="weight_sparsity", y="accuracy", color="method", markers=True,
              title="accuracy vs fraction of weights removed (no fine-tuning)"))
"""),
    md("""
Searched subnets and pruned variants on one front, one legend entry per pruning method (hover a
star for its sparsity): only structured pruning moves a model left (fewer parameters at dense
inference); unstructured masks stay at the subnet's size.
"""),
    code("""
variants = results.assign(name=[f"{m} {s:.0%}" for m, s in zip(results.method, results.sparsity)])
compression_figure(variants, search.results, objectives, x="params", y="accuracy", group="method",
                   title="Searched subnets and pruned variants")
"""),
    md("""
## Gradual pruning during fine-tuning (Zhu & Gupta)

`prune.gradual` returns a callback for your own training loop (or for a nasviz training run:
`run.subscribe(cb)`). Sparsity follows the cubic schedule
s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n Δt))^3, pruning the smallest weights every Δt steps;
pruned weights stay masked while the optimizer runs.
"""),
    code("""
tuned = copy.deepcopy(model)
cb = prune.gradual(tuned, gradual_final, n_steps=10, every=4)  # reaches s_f after 40 steps
acc = train(tuned, epochs=3, callback=cb)  # 3 epochs = 60 steps
print(f"gradual {cb.masks.sparsity:.0%} sparse, fine-tuned accuracy {acc:.1f}% "
      f"(dense {dense_accuracy:.1f}%)")
styled(px.line(cb.history, x="step", y="sparsity", markers=True, title="cubic sparsity schedule"))
"""),
    md("""
## Lottery tickets

Train, prune 20% of the remaining weights, rewind the survivors to their initial values, repeat.
Every round's masks are kept, so we can ask how much consecutive tickets agree, and look at
where the first and the last round disagree (red) in the viewer below.
"""),
    code("""
torch.manual_seed(seed)
fresh = copy.deepcopy(model)
for p in fresh.parameters():  # a new initialization, not the searched weights
    torch.nn.init.normal_(p, std=0.1)
# each round trains on data.train with nasviz's training layer and is measured on data.val
# (or pass your own train_fn(model) in place of the data)
tickets = prune.lottery(
    fresh, data, rounds=lottery_rounds, sparsity=1 - 0.8**lottery_rounds,
    train_options={"epochs": 2, "lr": 3e-3, "seed": seed}, val=data.val,
)
tickets.table().round(3)
"""),
    code("""
from nasviz.ui import MaskViewer

MaskViewer(tickets.masks[-1], other=tickets.masks[0], mode="diff")
"""),
    md("""
## Looking at masks

`MaskViewer` draws the largest layer's mask on a canvas (1 bit per weight is sent to the
browser; big layers are shown as density tiles, scroll to zoom down to single weights, or call
`viewer.zoom(rows, cols)`), with a sparsity bar per layer, a live sparsity slider, a method
picker and a diff mode against a second mask. A setting that fails (say `channels` at a ratio
that would empty a layer) is reported under the controls and the slider goes back. Saved
notebooks keep a static figure.
"""),
    code("""
viewer = MaskViewer(masks, model=model, other=erk)
viewer
"""),
    code("""
path = masks.save(out / "magnitude_75.npz")   # bit-packed npz, no pickle
assert prune.Masks.load(path, model=model) == masks
sorted(p.name for p in out.iterdir())
"""),
]

if __name__ == "__main__":
    out = write(Path(__file__).parent / "04_prune.ipynb", CELLS)
    print(f"wrote {out}")
