"""Generates notebooks/02_search.ipynb."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# Searching a supernet for the best accuracy / cost trade-offs

A trained supernet holds many subnets that share weights. Which ones are worth keeping? Those on
the **Pareto front**: no other subnet is both more accurate *and* cheaper. `nasviz.search.Search`
finds them with a multi-objective strategy, runs **in the background** (the kernel stays free),
and writes every evaluation to an Optuna storage the moment it completes, so a crash loses nothing.

Strategies: `"random"` (the honest baseline), `"nsga2"` (Optuna's evolutionary NSGA-II) and
`"predictor"` (the DyNAS-T/LINAS cycle: a cheap model of accuracy steers an inner NSGA-II over
thousands of predicted archs, and only the most promising ones are evaluated for real).
"""),
    params("""
strategy = "predictor"     # "random", "nsga2" or "predictor"
budget = 24                # real evaluations
seed = 0
checkpoint = None          # a supernet saved by 01_supernet (None: train a tiny one here)
out_dir = "runs/02_search" # results (CSV) and the search's journal file go here
"""),
    code("""
from pathlib import Path

import torch

import nasviz
from nasviz.objectives import accuracy, params as n_params
from nasviz.search import Search
from nasviz.supernet import ElasticMLP, load_supernet, train_supernet

torch.manual_seed(seed)
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
data = nasviz.data.digits(seed=seed, flat=True)
if checkpoint is None:
    net = ElasticMLP.for_data(data)
    train_supernet(net, data, epochs=1, seed=seed).run()   # a quick, rough supernet
else:
    net = load_supernet(checkpoint)
net.space
"""),
    md("""
Two objectives: validation **accuracy** (maximize; expensive, it runs the subnet) and the
**parameter count** (minimize; exact and cheap, so the predictor strategy computes it instead
of predicting it). `storage` is a journal file: `Search.load(path)` reopens it after a restart.
"""),
    code("""
storage = out / f"{strategy}-{seed}.journal"
if storage.exists():
    storage.unlink()   # start fresh on every run of this notebook
search = Search(net, objectives=[accuracy(data.val), n_params()], strategy=strategy, budget=budget,
                storage=str(storage), seed=seed)
search.start()          # returns at once: the search runs in a background thread
search.status
"""),
    md("""
While it runs you can read `search.status`, `pause()`, `resume()` or `stop()` it. Here we wait.
"""),
    code("""
status = search.wait()
print(status.state, status.done, "evaluations")
"""),
    md("""
`search.results` is a DataFrame with one row per evaluated subnet (arch, objectives, duration,
errors for failed ones). `pareto()` keeps the non-dominated rows; `hypervolume()` measures the
area the front dominates up to a reference point (worse than every point in each objective).
"""),
    code("""
results = search.results
front = search.pareto().sort_values("params")
print(len(results), "evaluated,", len(front), "on the Pareto front")
front[["trial", "accuracy", "params"]]
"""),
    code("""
history = search.hypervolume_history()
print("hypervolume:", round(search.hypervolume(), 2), "reference point:", search.reference_point())
history.tail()
"""),
    md("""
Saving: the CSV is for any tool; the journal file is the full record (Optuna study).
"""),
    code("""
results.drop(columns=["traceback"]).to_csv(out / f"results-{strategy}-{seed}.csv", index=False)
again = Search.load(str(storage))
assert len(again.results) == len(results)
sorted(p.name for p in out.iterdir())
"""),
]

if __name__ == "__main__":
    write(Path(__file__).with_name("02_search.ipynb"), CELLS)
