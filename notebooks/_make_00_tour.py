"""Generates notebooks/00_tour.ipynb."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# nasviz in ten minutes

nasviz is a workbench for efficient neural networks: weight-sharing supernets, multi-objective
architecture search with a live Pareto front, pruning, and mixture-of-experts analysis, all in
one notebook. This tour shows the pieces every other notebook builds on.
"""),
    params("""
seed = 0                  # every random choice below is seeded
n_samples = 5             # architectures to sample from the space
out_dir = "runs/00_tour"  # where the tour writes its one results table
"""),
    code("""
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

import nasviz
from nasviz import SearchSpace, accuracy, latency, macs, params

torch.manual_seed(seed)
print("nasviz", nasviz.__version__, "| torch", torch.__version__)
"""),
    md("""
## Search spaces and architectures

A `SearchSpace` is a set of named, discrete dimensions. Numeric dimensions are ordered, so the
space knows its largest and smallest member; per-stage choices are plain dimensions built with
`SearchSpace.repeated`. Its size is exact, however large.
"""),
    code("""
space = SearchSpace({
    **SearchSpace.repeated("depth", 3, [2, 3, 4]),
    **SearchSpace.repeated("kernel", 3, [3, 5, 7]),
    "width": [16, 32, 64],
})
print(space.size, "architectures")
print("largest :", space.largest())
print("smallest:", space.smallest())
"""),
    md("""
An `Arch` is an immutable, hashable mapping. Sampling is seeded; `mutate` and `neighbors` serve
evolutionary search; `encode` turns an arch into a vector for accuracy predictors.
"""),
    code("""
rng = np.random.default_rng(seed)
archs = space.sample(rng, n=n_samples)
for arch in archs:
    print(arch.group("depth"), arch.group("kernel"), arch["width"])
arch = archs[0]
print("mutated :", space.mutate(arch, rng))
print("encoded :", space.encode(arch).round(2))
print("as JSON :", arch.to_json())
"""),
    md("""
Bad input is caught with a message that says what is allowed:
"""),
    code("""
try:
    space.validate({**arch, "width": 48})
except nasviz.SpaceError as err:
    print("SpaceError:", err)
"""),
    md("""
## Built-in data (no downloads)

`nasviz.data.digits()` is scikit-learn's bundled 8x8 digits with a fixed, seeded split;
`nasviz.data.tasks()` is a synthetic multi-task token set used to show experts specializing;
`nasviz.data.from_arrays(X, y)` wraps your own arrays the same way.
"""),
    code("""
digits = nasviz.data.digits(seed=seed)
tasks = nasviz.data.tasks(seed=seed)
print(digits)
print(tasks, "| tasks:", tasks.info["task_names"])
"""),
    md("""
## Objectives

An objective is a named, directed measurement of a model: `params()`, `macs(shape)` (torch's
own FLOP counter), `latency(shape)` (median of timed runs after warm-up) and `accuracy(data)`.
Here a small CNN is trained for a few seconds and measured; like every nasviz result, the
measurements are a pandas DataFrame, saved to `out_dir`.
"""),
    code("""
model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(3):
    for X, y in digits.train.loader(batch_size=64, shuffle=True, seed=epoch):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        opt.step()

measured = pd.DataFrame(
    {"objective": o.name, "direction": o.direction, "value": o(model)}
    for o in (params(), macs((1, 1, 8, 8)), accuracy(digits))
)
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
measured.to_csv(out / "tour_objectives.csv", index=False)
measured
"""),
    code(
        """
lat = latency((1, 8, 8), batch=1, repeats=20)
print(f"latency: {lat(model):.3f} ms median over 20 runs, {lat.last.threads} thread(s)")
""",
        "nbval-ignore-output",
    ),
    md("""
## Where next

- `01_supernet` — build and train a weight-sharing supernet, export subnets.
- `02_search` — multi-objective search in the background, persisted as it runs.
- `03_pareto` — the live search dashboard: Pareto front, hypervolume, click a point to inspect it.
- `04_prune` — pruning masks you can see and turn into real speed.
- `05_moe` — mixture-of-experts routing, expert pruning and merging.
- `pipeline/` — train -> search -> compress -> report as papermill steps: `nasviz pipeline --out DIR`.
"""),
]

if __name__ == "__main__":
    write(Path(__file__).with_name("00_tour.ipynb"), CELLS)
