"""Generates notebooks/05_moe.ipynb."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# Mixture of experts: watch the routing, then compress the experts

A **mixture-of-experts (MoE)** layer replaces one feed-forward network by several *experts*
and a small **router**. For every token the router scores all experts, keeps the `top_k` best
(softmax, then the kept weights are renormalized to sum to 1) and mixes only their outputs. A
**load-balancing loss** `E · Σ_e f_e · P_e` (share of tokens sent to expert *e* times its mean
router probability) keeps the router from sending everything to one expert.

Which tokens go where is the interesting part. Here we train a tiny MoE classifier on
`nasviz.data.tasks()` — four synthetic tasks with different rules — record its routing,
look at it as heatmaps, and then use what we saw to **prune** and **merge** experts.
"""),
    params("""
seed = 0
n_per_task = 300      # examples per task
epochs = 6            # training epochs (a few seconds each on a CPU)
num_experts = 4
top_k = 2
keep = 2              # experts kept per layer when pruning
groups = 2            # experts left per layer after merging
"""),
    code("""
import numpy as np
import torch

import nasviz
from nasviz.moe import (MoEClassifier, RoutingRecorder, RoutingStats, compression_report,
                        merge_experts, prune_experts, train_moe)

torch.manual_seed(seed)
data = nasviz.data.tasks(n_per_task=n_per_task, seed=seed)
print(data, data.info["task_names"])
model = MoEClassifier.for_dataset(data, num_experts=num_experts, top_k=top_k)
history = train_moe(model, data, epochs=epochs, seed=seed)
history
"""),
    md("""
## Record the routing

`RoutingRecorder` hooks every MoE layer it finds (ours, and Hugging Face blocks such as Mixtral,
Qwen-MoE, OLMoE or Switch Transformers), records each token's chosen experts, gate weights and
router probabilities, and removes its hooks when the `with` block ends. Labels travel along:
here each test example's task and class. Recording never changes the model's outputs.
"""),
    code("""
test = data.test
with torch.no_grad(), RoutingRecorder(model, labels={"task": test.extras["task"], "class": test.y}) as rec:
    model(test.X)
stats = rec.stats()
print(stats)
stats.load_matrix()          # layer x expert: share of the layer's assignments
"""),
    md("""
Every result is a DataFrame. Where does each task's traffic go? The first-choice expert of each
token, per task (rows sum to 1). The model's tokens also see their sequence's first token — the
task marker — so routers *can* route by task; the table shows how much they do.
"""),
    code("""
for layer in stats.layers:
    print(layer)
    display(stats.by_label("task", layer=layer, first_choice=True).round(2))
"""),
    md("""
A number for "specialized by task": the **mutual information** between the task and each
token's first-choice expert, next to the same number with the task labels shuffled (what
chance alone gives). `log(4) ≈ 1.39` nats would be one expert per task.
"""),
    code("""
shuffled = RoutingStats(stats.recording.with_labels(task=np.random.default_rng(seed).permutation(test.extras["task"])))
for i, layer in enumerate(stats.layers):
    print(f"{layer}: MI(task; expert) = {stats.mutual_information('task', i):.3f} nats, "
          f"shuffled {shuffled.mutual_information('task', i):.4f}")
stats.summary()              # load balance (CV, max/mean) and router entropy per layer
"""),
    md("""
## Look at it

`RoutingHeatmap` shows the layer x expert load; **click a cell** to list the tokens routed
there (strongest gate first, with their labels). Switch the view to *task x expert* or to a
*sequence* (tokens x layers, coloured by first-choice expert). The **drop experts** control
re-routes the recorded tokens without the chosen experts and, since we pass the model and
data, reports the accuracy of that pruned copy. In a saved notebook a static figure stands in.
"""),
    code("""
from nasviz.ui import RoutingHeatmap

heatmap = RoutingHeatmap(stats, model=model, data=test)
heatmap
"""),
    code("""
stats.sequence(0)            # the same sequence view as a table: token ids and experts per layer
"""),
    md("""
## Compress the experts

* **Pruning** (`prune_experts`) keeps the `keep` most used experts of each layer; the router
  keeps only their rows, so its softmax renormalizes over what is left. With `per_label` it
  ranks experts by one task's tokens only (task-specific pruning).
* **Merging** (`merge_experts`, M-SMoE) keeps the `groups` most used experts as *dominant*,
  joins every other expert to the dominant one whose router logits it resembles, permutes its
  hidden neurons to line up with the dominant's (linear assignment), and averages the group
  weighted by how often each expert was used. The router stays whole, so routing is unchanged.

Both return compressed copies; `model` itself is untouched.
"""),
    code("""
variants = {
    "original": model,
    f"pruned (keep {keep})": prune_experts(model, stats, keep=keep),
    "pruned for task 0": prune_experts(model, stats, keep=keep, per_label=("task", 0)),
    f"merged ({groups} groups)": merge_experts(model, stats, groups=groups),
}
report = compression_report(variants, test)
report
"""),
    md("""
The report has the same `accuracy` and `params` columns as a search's results, so compressed
variants sit on the same Pareto axes.
"""),
    code("""
from nasviz.viz import compression_figure

compression_figure(report)
"""),
    md("""
## Before and after

Record the merged model and compare: its routers are the original ones, so the router-slot
load should barely move even though half the expert weights are gone.
"""),
    code("""
merged = variants[f"merged ({groups} groups)"]
with torch.no_grad(), RoutingRecorder(merged, labels={"task": test.extras["task"]}) as rec_merged:
    merged(test.X)
stats.compare(rec_merged.stats(), names=("original", "merged")).round(3)
"""),
    md("""
Recordings save to a single `.npz` (plain arrays and JSON, no pickle) and load back.
"""),
    code("""
import tempfile
from pathlib import Path

path = stats.save(Path(tempfile.mkdtemp()) / "routing.npz")
again = RoutingStats.from_file(path)
assert again.load().equals(stats.load())
print("saved and reloaded", path.name)
"""),
]

if __name__ == "__main__":
    print(write(Path(__file__).with_name("05_moe.ipynb"), CELLS))
