"""Generates the pipeline step notebooks in notebooks/pipeline/."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

HERE = Path(__file__).parent / "pipeline"

TRAIN = [
    md("""
# Pipeline step 1: train a supernet

Trains a weight-sharing supernet on scikit-learn's digits and writes `supernet.pt` (config +
weights, loadable with `weights_only=True`) and `training.csv` to `out_dir`. Run the whole chain
with `nasviz pipeline --out DIR`, or this step alone with `nasviz run pipeline/1_train_supernet`.
"""),
    params("""
seed = 0                 # (≥ 0)
family = "ElasticMLP"    # one of: "ElasticMLP", "ElasticCNN"
epochs = 6               # (≥ 1)
out_dir = "runs/pipeline"
"""),
    code("""
from pathlib import Path

import torch

import nasviz
from nasviz.pipeline import begin_step, finish_step
from nasviz.supernet import ElasticCNN, ElasticMLP, train_supernet
from nasviz.viz import loss_figure

out = Path(out_dir)
begin_step(out, "train_supernet")
torch.manual_seed(seed)
families = {"ElasticMLP": ElasticMLP, "ElasticCNN": ElasticCNN}
if family not in families:
    raise ValueError(f"family must be one of {list(families)}, got {family!r}")
data = nasviz.data.digits(seed=seed, flat=family == "ElasticMLP")
net = families[family].for_data(data)
run = train_supernet(net, data, epochs=epochs, seed=seed)
run.run()
print(run.status)
print(run.evaluations.tail(1).to_string(index=False))
"""),
    code("""
net.save(out / "supernet.pt")
run.history.to_csv(out / "training.csv", index=False)
finish_step(out, "train_supernet")
loss_figure(run.history)
"""),
]

SEARCH = [
    md("""
# Pipeline step 2: search the trained supernet

Loads `supernet.pt`, runs a multi-objective search (accuracy vs MACs vs parameters) whose every
evaluation is persisted in `search.journal`, and writes the results table and its Pareto front.
A search interrupted earlier (same supernet, same parameters) resumes from its journal; a journal
made for another supernet or other parameters is kept aside as `search.1.journal`, never deleted.
"""),
    params("""
seed = 0                 # (≥ 0)
strategy = "nsga2"       # one of: "random", "nsga2", "predictor"
budget = 30              # evaluations (≥ 1)
out_dir = "runs/pipeline"
"""),
    code("""
from pathlib import Path

import nasviz
from nasviz import accuracy, macs, params
from nasviz.pipeline import begin_step, finish_step, prepare_resumable
from nasviz.search import Search
from nasviz.supernet import Supernet
from nasviz.viz import hypervolume_figure, pareto_figure

out = Path(out_dir)
manifest = begin_step(out, "search")
trained = manifest["steps"]["train_supernet"]
net = Supernet.load(out / "supernet.pt")
flat = net.family == "ElasticMLP"
data = nasviz.data.digits(seed=trained["parameters"].get("seed", seed), flat=flat)
shape = (1, *data.input_shape)
journal = out / "search.journal"
key = {
    "supernet": trained["outputs"]["supernet.pt"],
    "seed": seed,
    "strategy": strategy,
    "budget": budget,
}
moved = prepare_resumable(journal, key)
if moved:
    print(f"an earlier search (other supernet or parameters) is kept as {moved.name}")
search = Search(net, objectives=[accuracy(data.val), macs(shape), params()], strategy=strategy,
                budget=budget, storage=journal, workers=1, seed=seed)
print(f"{len(search.results)} evaluations resumed from {journal.name}")
if not search.run.engine.finished():  # a journal that reached the budget has nothing left to run
    search.run.run()
print(search.status)
"""),
    code("""
columns = ["trial", "state", *net.space.names, "accuracy", "macs", "params", "feasible", "error"]
results = search.results[columns]
results.to_csv(out / "results.csv", index=False)
search.pareto()[columns].to_csv(out / "pareto.csv", index=False)
finish_step(out, "search")
print(f"{len(results)} evaluated, {len(search.pareto())} on the front")
pareto_figure(results, search.objectives)
"""),
    code("""
hypervolume_figure(results, search.objectives)
"""),
]

COMPRESS = [
    md("""
# Pipeline step 3: compress the best subnets

Takes the most accurate subnets of the Pareto front, exports each from the supernet, prunes
whole channels (structured, so the model really shrinks), recovers the pruned model briefly
with the training layer (`finetune="distill"`: `nasviz.recover` distils the unpruned subnet
into it, mixed with the labels' loss; `"train"`: plain fine-tuning on the labels), and writes
one row per variant to `compressed.csv` on the search's axes (accuracy, MACs, parameters).
"""),
    params("""
seed = 0                 # (≥ 0)
n_best = 2               # subnets of the front compressed (≥ 1)
sparsity = 0.5           # fraction of channels removed per layer
finetune_epochs = 2      # (≥ 0)
finetune = "distill"     # one of: "distill", "train"
out_dir = "runs/pipeline"
"""),
    code("""
import math
from pathlib import Path

import pandas as pd
import torch

import nasviz
from nasviz import prune
from nasviz.objectives import count_macs, count_params, evaluate_accuracy
from nasviz.pipeline import begin_step, finish_step
from nasviz.supernet import Supernet

out = Path(out_dir)
manifest = begin_step(out, "compress_best")
trained = manifest["steps"]["train_supernet"]["parameters"]
net = Supernet.load(out / "supernet.pt")
data = nasviz.data.digits(seed=trained.get("seed", seed), flat=net.family == "ElasticMLP")
shape = (1, *data.input_shape)
front = pd.read_csv(out / "pareto.csv").sort_values(["accuracy", "trial"], ascending=[False, True])
best = front.head(n_best)
"""),
    code("""
steps = finetune_epochs * math.ceil(len(data.train.y) / 64)


def recovered(small, teacher):  # the pruned model after `steps` updates of recovery
    if steps:
        options = {"steps": steps, "batch_size": 64, "lr": 1e-3, "seed": seed}
        if finetune == "distill":
            run = nasviz.recover(small, teacher, data.train, **options)
        else:
            run = nasviz.training.train(small, data.train, **options)
        assert run.run().state == "finished", run.traceback
    return small.eval()


rows = []
for _, row in best.iterrows():
    arch = net.space.validate({name: row[name] for name in net.space.names})
    subnet = net.export(arch).eval()
    variants = {"subnet": subnet}
    masks = prune.channels(subnet, sparsity, example_input=torch.zeros(shape))
    variants[f"channels {sparsity:.0%}"] = recovered(prune.shrink(subnet, masks), subnet)
    for method, model in variants.items():
        rows.append({"trial": int(row["trial"]), "method": method, "arch": arch.to_json(),
                     "accuracy": evaluate_accuracy(model, data.val), "macs": count_macs(model, shape),
                     "params": count_params(model)})
compressed = pd.DataFrame(rows)
compressed.to_csv(out / "compressed.csv", index=False)
finish_step(out, "compress_best")
compressed.round(3)
"""),
]

REPORT = [
    md("""
# Pipeline step 4: report

Puts the searched subnets and their compressed variants on the same Pareto axes and writes a
summary (`report.json`). This executed notebook is the run's readable report.
"""),
    params("""
out_dir = "runs/pipeline"
"""),
    code("""
import json
from pathlib import Path

import pandas as pd

from nasviz.pipeline import begin_step, finish_step
from nasviz.viz import compression_figure, pareto_info

out = Path(out_dir)
manifest = begin_step(out, "report")
results = pd.read_csv(out / "results.csv")
compressed = pd.read_csv(out / "compressed.csv")
objectives = [("accuracy", "maximize"), ("macs", "minimize"), ("params", "minimize")]
variants = compressed[compressed.method != "subnet"]
variants = variants.assign(name=[f"trial {t}, {m}" for t, m in zip(variants.trial, variants.method)])
compression_figure(variants, results, objectives, x="macs", y="accuracy", group="method",
                   title="Searched and compressed subnets")
"""),
    code("""
front = pareto_info(results, objectives)
summary = {
    "run_id": manifest["run_id"],
    "evaluated": int((results.state == "COMPLETE").sum()),
    "failed": int((results.state == "FAIL").sum()),
    "front_size": int(front.front.sum()),
    "best_accuracy": float(results.accuracy.max()),
    "compressed": compressed.drop(columns=["arch"]).to_dict("records"),
}
(out / "report.json").write_text(json.dumps(summary, indent=2) + "\\n")
finish_step(out, "report")
print(json.dumps({k: v for k, v in summary.items() if k != "compressed"}, indent=2))
"""),
]

if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    write(HERE / "1_train_supernet.ipynb", TRAIN)
    write(HERE / "2_search.ipynb", SEARCH)
    write(HERE / "3_compress_best.ipynb", COMPRESS)
    write(HERE / "4_report.ipynb", REPORT)
