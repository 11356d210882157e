"""Generates notebooks/03_pareto.ipynb."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# The live Pareto front

A search runs in a background thread while this kernel stays free. The **dashboard** shows it
as it happens: every evaluated subnet (hover one to see its architecture), the current front
highlighted and connected, dominated points faded, failed and constraint-violating evaluations
counted, the hypervolume growing, and buttons that pause, resume and stop it. The **explorer**
then browses the finished (or a saved) search: click a point to see that subnet, measure its
real latency, export it, pin up to four for comparison, and drag budget sliders to find the
best subnet that fits.

Everything the widgets show is also reachable from code (`search.results`, `search.pareto()`,
`search.hypervolume_history()`), and every evaluation is already in the search's storage.
"""),
    params("""
seed = 0                 # (≥ 0)
epochs = 4               # supernet training, a few seconds (≥ 1)
budget = 40              # evaluations of the search (≥ 1)
strategy = "nsga2"       # one of: "random", "nsga2", "predictor"
workers = 2              # evaluations at once (≥ 1)
out_dir = "runs/03_pareto"
"""),
    code("""
from pathlib import Path

import pandas as pd
import torch

import nasviz
from nasviz import accuracy, latency, macs, params
from nasviz.search import Search
from nasviz.supernet import ElasticMLP, train_supernet
from nasviz.ui import ParetoExplorer, SearchDashboard
from nasviz.viz import format_frame

torch.manual_seed(seed)
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
data = nasviz.data.digits(seed=seed, flat=True)
net = ElasticMLP(widths=(16, 32, 48, 64, 96, 128), depths=(1, 2, 3, 4))
train_supernet(net, data, epochs=epochs, seed=seed).run()
print(f"supernet with {net.space.size} archs, trained for {epochs} epochs")
"""),
    md("""
## A live search

`start()` returns at once. The dashboard listens to the search and redraws at most ten times
a second, sending only what changed, so the notebook stays responsive however fast results
arrive. With three objectives, pick the axes and the colour above the plot. When the search
ends, the static copy of the dashboard saved in this notebook's output is replaced by the
final one (what a papermill run or a reopened notebook shows).
"""),
    code("""
storage = out / "search.journal"
storage.unlink(missing_ok=True)
search = Search(net, objectives=[accuracy(data.val), macs((1, 64)), params()], strategy=strategy,
                budget=budget, storage=storage, workers=workers, seed=seed)
dashboard = SearchDashboard(search)
search.start()
dashboard
"""),
    code(
        """
search.wait()
print(search.status)
print(f"{len(search.pareto())} subnets on the front")
""",
        "nbval-ignore-output",
    ),
    md("""
## Your turn: a random-search baseline

This search is created but not started: press **Start**, watch points arrive, press **Stop**
whenever you like. Random search is the honest baseline every Pareto plot should be compared to;
this one also measures each subnet's real latency. Its budget (2000) is larger than the number
of distinct subnets (archs that differ only in the widths of layers past their depth compute the
same subnet and are evaluated once), so left alone it ends by itself when every one of them has
been evaluated, and its status line says so.
"""),
    code("""
baseline = Search(net, objectives=[accuracy(data.val), macs((1, 64)), latency((64,), batch=1, repeats=10)],
                  strategy="random", budget=2000, storage=":memory:", workers=1, seed=seed + 1)
SearchDashboard(baseline)
"""),
    md("""
## Explore the front

Click a point (or lasso several). The buttons act in this kernel on that subnet: measure its
latency now, export it (to `explorer.exported` and to a file in the search's folder, `out_dir`;
the message shows the path), pin it for comparison. The sliders bound the cost objectives:
subnets over budget fade, the table keeps the front's subnets that fit, and the star marks the
most accurate one.

The views are not ipywidgets themselves: to lay two side by side, put their `.widget` in a
container, e.g. `ipywidgets.HBox([dashboard.widget, explorer.widget])`.
"""),
    code("""
results = search.results
results.to_csv(out / "results.csv", index=False)
explorer = ParetoExplorer(search, net=net, latency_input=(1, 64))
explorer
"""),
    md("""
The same explorer works on a saved table (a papermill run's output, say): give it the
objectives and, for the architecture view, the space.
"""),
    code("""
saved = pd.read_csv(out / "results.csv")
objectives = [("accuracy", "maximize"), ("macs", "minimize"), ("params", "minimize")]
browse = ParetoExplorer(saved, objectives=objectives, space=net.space)
browse.sliders["macs"].value = float(saved["macs"].median())
best = browse.apply_budgets()
print("best subnet within the median MACs:", best)
format_frame(browse.front().head(), ["accuracy", "macs", "params"])
"""),
]

if __name__ == "__main__":
    write(Path(__file__).with_name("03_pareto.ipynb"), CELLS)
