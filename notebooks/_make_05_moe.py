"""Generates notebooks/05_moe.ipynb."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# Mixture of experts: watch the routing, then compress the experts

A **mixture-of-experts (MoE)** layer replaces one feed-forward network by several *experts*
and a small **router**. For every token the router scores all experts, keeps the `top_k` best
(softmax at a `temperature`, then the kept weights are renormalized to sum to 1) and mixes only
their outputs. A **load-balancing loss** `E · Σ_e f_e · P_e` (share of tokens sent to expert
*e* times its mean router probability) keeps the router from sending everything to one expert.
An optional **capacity factor** caps how many tokens each expert takes per batch; the overflow
is dropped (the token skips that expert and is carried by the residual connection).

Which tokens go where is the interesting part. Here we train a tiny MoE classifier on
`nasviz.data.tasks()` — four synthetic tasks with different rules — record its routing,
look at it as heatmaps, and then use what we saw to **prune** and **merge** experts, and put the
compressed models on the same Pareto axes as an architecture search.
"""),
    params("""
seed = 0  # (≥ 0)
n_per_task = 300  # examples per task (≥ 1)
epochs = 6  # training epochs, a few seconds each on a CPU (≥ 1)
num_experts = 4  # (≥ 2)
top_k = 2  # (≥ 1)
temperature = 1.0  # router softmax temperature (lower: sharper routing)
capacity_factor = None  # e.g. 1.0: each expert takes at most its fair share of a batch
keep = 2  # experts kept per layer when pruning
groups = 2  # experts left per layer after merging
supernet_epochs = 2  # the MoE supernet searched at the end
search_budget = 12  # subnets that search evaluates
"""),
    code("""
import numpy as np
import torch

import nasviz
from nasviz.moe import (
    MoEClassifier,
    RoutingRecorder,
    RoutingStats,
    compression_report,
    merge_experts,
    prune_experts,
    train_moe,
)

torch.manual_seed(seed)
data = nasviz.data.tasks(n_per_task=n_per_task, seed=seed)
print(data, data.info["task_names"])
model = MoEClassifier.for_data(
    data,
    num_experts=num_experts,
    top_k=top_k,
    temperature=temperature,
    capacity_factor=capacity_factor,
)
history = train_moe(model, data, epochs=epochs, seed=seed)
history
"""),
    md("""
## Record the routing

`RoutingRecorder` hooks every MoE layer it finds (ours, and Hugging Face blocks such as Mixtral,
Qwen-MoE, OLMoE or Switch Transformers, in transformers 4.45+ and 5), records each token's
chosen experts, gate weights, router probabilities and whether a capacity limit dropped it, and
removes its hooks when the `with` block ends. Labels travel along: here each test example's task
and class. Recording never changes the model's outputs. (With Hugging Face models it also
leaves out padding given by an `attention_mask` and keeps `generate()`'s decode steps with their
prompts.)
"""),
    code("""
test = data.test
with (
    torch.no_grad(),
    RoutingRecorder(model, labels={"task": test.extras["task"], "class": test.y}) as rec,
):
    model(test.X)
stats = rec.stats()
print(stats)
stats.load_matrix().round(3)  # layer x expert: share of the layer's processed assignments
"""),
    md("""
Every result is a DataFrame. `stats.expert_load()` has one row per (layer, expert): `count` of tokens
the expert processed, `dropped` (chosen, but over capacity), `fraction`, mean gate and mean
router probability. Where does each task's traffic go? The first-choice expert of each token,
per task (rows sum to 1). The model's tokens also see their sequence's first token — the task
marker — so routers *can* route by task; the table shows how much they do.
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
shuffled = RoutingStats(
    stats.recording.with_labels(task=np.random.default_rng(seed).permutation(test.extras["task"]))
)
for i, layer in enumerate(stats.layers):
    print(
        f"{layer}: MI(task; expert) = {stats.mutual_information('task', i):.3f} nats, "
        f"shuffled {shuffled.mutual_information('task', i):.4f}"
    )
stats.summary().round(3)  # load balance (CV, max/mean, dropped share) and router entropy per layer
"""),
    md("""
## Look at it

`RoutingHeatmap` shows the layer x expert load; **click a cell** to list the tokens routed
there (strongest gate first, with their labels). Switch the view to *task x expert* or to a
*sequence* (tokens x layers, coloured by the expert that processed each token; grey: not
routed). The **drop experts** control re-routes the recorded tokens without the chosen experts
(from the recorded router probabilities, instantly) and shows that load in the heatmap; since we
pass the model and data, the **accuracy change** button evaluates the pruned copy on demand.
Load colours start at 0 and put the uniform share (every expert equally used, here 25%) in the
middle of the scale, so a balanced layer reads as one even colour. In a saved notebook a static
figure stands in.
"""),
    code("""
from nasviz.ui import RoutingHeatmap

heatmap = RoutingHeatmap(stats, model=model, data=test)
heatmap
"""),
    md("""
The same what-if without the widget: the last layer's load if its least used expert were gone.
"""),
    code("""
least_used = int(stats.counts(-1).argmin())
stats.load_without(-1, [least_used]).round(3)
"""),
    code("""
stats.sequence(0)  # the sequence view as a table: token ids and experts per layer
"""),
    md("""
## Compress the experts

* **Pruning** (`prune_experts`) keeps the `keep` most used experts of each layer; the router
  keeps only their rows, so its softmax renormalizes over what is left. With `per_label` it
  ranks experts by one task's tokens only (**task-specific pruning**).
* **Merging** (`merge_experts`, M-SMoE) keeps the `groups` most used experts as *dominant*,
  joins every other expert to the dominant one whose router logits it resembles, permutes its
  hidden neurons to line up with the dominant's (linear assignment), and averages the group
  weighted by how often each expert was used. The router stays whole, so routing is unchanged.

Both return compressed copies; `model` itself is untouched. Both check that the stats were
recorded from this very model (layer fingerprints: router shape and weights, experts).

`compression_report` measures every variant with the objectives a search uses (accuracy,
params, MACs, under those names) plus memory, and with `label="task"` the accuracy on each
task's examples alone: a model pruned *for task 0* is judged on task 0.
"""),
    code("""
variants = {
    "original": model,
    f"pruned (keep {keep})": prune_experts(model, stats, keep=keep),
    "pruned for task 0": prune_experts(model, stats, keep=keep, per_label=("task", 0)),
    f"merged ({groups} groups)": merge_experts(model, stats, groups=groups),
}
report = compression_report(variants, test, label="task")
shown = ["name", "accuracy", "params", "macs", "memory_bytes"]
report[[*shown, "accuracy_change", "params_saved_fraction"]].round(3)
"""),
    code("""
report.set_index("name").filter(like="accuracy_task_").round(1)  # accuracy per task (%)
"""),
    md("""
## Before and after

Record the merged model and compare: its routers are the original ones, so the router-slot
load should barely move even though expert weights are gone. `compare` lines up the load per
(layer, expert); `compare_layers` lines up balance and entropy per layer.
"""),
    code("""
merged = variants[f"merged ({groups} groups)"]
with torch.no_grad(), RoutingRecorder(merged, labels={"task": test.extras["task"]}) as rec_merged:
    merged(test.X)
stats.compare(rec_merged.stats(), names=("original", "merged")).round(3)
"""),
    code("""
stats.compare_layers(rec_merged.stats(), names=("original", "merged")).round(3)
"""),
    md("""
## On the search's Pareto axes

Compression is one way to a smaller model; architecture search is another. An
`ElasticTransformer` with MoE FFNs is a supernet whose search space includes how many experts
each block keeps and its top-k. We train one briefly, search it, then compress its largest
subnet from its routing statistics and measure the variants with **the search's own
objectives** — the stars land on the same axes as the search's subnets (filled: on the joint
front).
"""),
    code("""
from nasviz.objectives import accuracy, macs
from nasviz.objectives import params as n_params
from nasviz.search import Search
from nasviz.supernet import ElasticTransformer, train_supernet
from nasviz.viz import compression_figure

torch.manual_seed(seed)
net = ElasticTransformer.for_data(
    data,
    dim=32,
    head_dim=16,
    layers=(1, 2),
    heads=(1, 2),
    ffn_widths=(32, 64),
    moe=True,
    experts=(2, 4),
    top_ks=(1, 2),
)
train_supernet(net, data, epochs=supernet_epochs, seed=seed).run()
search = Search(
    net,
    objectives=[accuracy(data.val), n_params(), macs((1, data.input_shape[0]))],
    strategy="random",
    budget=search_budget,
    storage=":memory:",
    seed=seed,
)
search.start().wait()
largest = net.export(net.space.largest()).eval()
with torch.no_grad(), RoutingRecorder(largest) as rec_largest:
    largest(data.val.X)
stats_largest = rec_largest.stats()
subnet_variants = {
    "largest subnet": largest,
    "pruned (keep 2)": prune_experts(largest, stats_largest, keep=2),
    "merged (2 groups)": merge_experts(largest, stats_largest, groups=2),
    "merged (1 group)": merge_experts(largest, stats_largest, groups=1),
}
subnet_report = compression_report(subnet_variants, data.val, objectives=search.objectives)
subnet_report[["name", "accuracy", "params", "macs", "accuracy_change", "params_saved_fraction"]].round(3)
"""),
    code("""
compression_figure(subnet_report, search.results, search.objectives, x="params", y="accuracy")
"""),
    md("""
Recordings save to a single `.npz` (plain arrays and JSON, no pickle) and load back, layer
fingerprints included, so stats saved today still refuse a model that changed since.
"""),
    code("""
import tempfile
from pathlib import Path

path = stats.save(Path(tempfile.mkdtemp()) / "routing.npz")
again = RoutingStats.from_file(path)
assert again.expert_load().equals(stats.expert_load()) and again.recording.signature == stats.recording.signature
print("saved and reloaded", path.name)
"""),
]

if __name__ == "__main__":
    print(write(Path(__file__).with_name("05_moe.ipynb"), CELLS))
