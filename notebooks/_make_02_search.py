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
strategy = "predictor"     # one of: "random", "nsga2", "predictor"
budget = 24                # real evaluations (≥ 1), counting those already in `storage`
seed = 0                   # (≥ 0)
storage: "Optional[str]" = None  # journal file or RDB URL; None: a fresh <out_dir>/<strategy>-<seed>.journal
checkpoint = "runs/01_supernet/supernet_mlp.pt"  # saved by 01_supernet; trained briefly here if missing
data_seed = 0              # the digits split the supernet was trained on (01's seed, ≥ 0)
out_dir = "runs/02_search" # results (CSV) go here
"""),
    md("""
The supernet: the one notebook 01 trained and saved, when its checkpoint is there; otherwise a
small `ElasticMLP` trained here for one epoch (rough, but enough to see a search work), and a
note says so, here and in the terminal of `nasviz run`.
"""),
    code("""
from pathlib import Path

import torch

import nasviz
from nasviz.objectives import accuracy, macs
from nasviz.pipeline import notice
from nasviz.search import Search
from nasviz.supernet import ElasticMLP, Supernet, train_supernet
from nasviz.viz import hypervolume_figure, pareto_figure

torch.manual_seed(seed)
torch.set_num_threads(1)  # tiny models: one thread is fastest
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
data = nasviz.data.digits(seed=data_seed)
if checkpoint and Path(checkpoint).is_file():
    net = Supernet.load(checkpoint)
    print("loaded", checkpoint)
else:
    net = ElasticMLP.for_data(data)
    train_supernet(net, data, epochs=1, seed=seed).run()
    notice(f"no trained supernet at {checkpoint!r} (run 01_supernet first): this search uses an "
           "ElasticMLP trained here for one epoch only, so its accuracies are rough")
print(net.family, f"{net.space.size:,} archs")
"""),
    md("""
Two objectives: validation **accuracy** (maximize; expensive, it runs the subnet) and
**MACs** (minimize; exact and cheap, so the predictor strategy computes it instead of predicting
it). Archs that compute the same subnet (say, widths of layers past the depth) are evaluated
once. `storage` is where every evaluation is written as it completes; given an existing one, the
search resumes it, and `Search.load(storage)` reopens it after a restart.
"""),
    code("""
if storage is None:
    storage = str(out / f"{strategy}-{seed}.journal")
    Path(storage).unlink(missing_ok=True)  # the default storage starts fresh on every run
search = Search(net, objectives=[accuracy(data.val), macs((1, *data.input_shape))],
                strategy=strategy, budget=budget, storage=storage, seed=seed)
search.start()          # returns at once: the search runs in a background thread
print(search.status)
"""),
    md("""
While it runs you can read `search.status`, `pause()`, `resume()` or `stop()` it. Here we wait.
"""),
    code("""
status = search.wait()
print(status)
"""),
    md("""
`search.results` is a DataFrame with one row per evaluated subnet (arch, objectives, duration,
errors for failed ones). `pareto()` keeps the non-dominated rows; `hypervolume()` measures the
area the front dominates up to a reference point (worse than every point in each objective).
"""),
    code("""
results = search.results
front = search.pareto().sort_values("macs")
print(len(results), "evaluated,", len(front), "on the Pareto front")
front[["trial", *net.space.names, "accuracy", "macs"]].round({"accuracy": 2})
"""),
    md("""
The same as figures: every evaluated subnet with the front highlighted (hover a point for its
arch), and how the hypervolume grew, as a share of a fixed reference box (its raw value is on
hover).
"""),
    code("""
pareto_figure(results, search.objectives)
"""),
    code("""
hypervolume_figure(results, search.objectives)
"""),
    code("""
history = search.hypervolume_history()
print(f"hypervolume {search.hypervolume():.4g} at reference point {search.reference_point().round(2)}")
history.tail().round(4)
"""),
    md("""
The predictor strategy records how well its accuracy model ranked each batch before seeing it
(Kendall tau: 1 is a perfect ranking; MAPE in percent). Empty for the other strategies.
"""),
    code("""
search.cycles.reindex(columns=["cycle", "trained_on", "accuracy_kendall_tau", "accuracy_mape"]).round(3)
"""),
    md("""
Saving: the CSVs are for any tool; the storage is the full record (an Optuna study, readable by
Optuna's own tools through `search.study`).
"""),
    code("""
tag = f"{strategy}-{seed}"
results.drop(columns=["traceback"]).to_csv(out / f"results-{tag}.csv", index=False)
front.drop(columns=["traceback"]).to_csv(out / f"pareto-{tag}.csv", index=False)
history.to_csv(out / f"hypervolume-{tag}.csv", index=False)
if storage != ":memory:":
    assert len(Search.load(storage).results) == len(results)  # everything is in the storage
sorted(p.name for p in out.iterdir())
"""),
]

if __name__ == "__main__":
    write(Path(__file__).with_name("02_search.ipynb"), CELLS)
