"""Generates notebooks/01_supernet.ipynb (run: .venv/bin/python notebooks/_make_01_supernet.py)."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# 01 · A weight-sharing supernet

A **supernet** holds the weights of its largest network; every smaller network in its search
space (a *subnet*) reuses slices of them: the first channels, the centre of a kernel, the first
blocks of a stage. Train it once and you can evaluate thousands of subnets without retraining
any of them (the Once-for-All idea). This notebook builds one, trains it in the background,
compares subnets and exports one as a plain PyTorch model.
"""),
    params("""
family = "mlp"  # "mlp" or "cnn"
epochs = 10  # None: the family's default recipe
seed = 0
out_dir = "runs/01_supernet"
"""),
    code("""
from pathlib import Path

import pandas as pd
import plotly.express as px
import torch

import nasviz
from nasviz.supernet import ElasticCNN, ElasticMLP, train_supernet
from nasviz.ui import TrainingMonitor
from nasviz.viz import accuracy_figure, loss_figure, loss_info, styled

torch.manual_seed(seed)
torch.set_num_threads(1)  # tiny models: one thread is fastest
data = nasviz.data.digits(seed=seed)
net = {"mlp": ElasticMLP, "cnn": ElasticCNN}[family].for_data(data)
print(net.space)
print(f"{net.space.size:,} subnets share {nasviz.objectives.count_params(net):,} parameters")
"""),
    md("""
## Train in the background, from a DataLoader

`train_supernet` takes data in any form: a nasviz `Dataset`, `(X, y)` arrays, a pandas
DataFrame, a Hugging Face dataset, a stream, or, as here, your own PyTorch `DataLoader`. nasviz
keeps the loader's dataset, batch size and workers and gives it a seeded order, so this run
computes exactly what `train_supernet(net, data, ...)` computes on the tensors. `device=`
(`"cuda"`, `"mps"`, `"auto"`), `precision="bf16"` and `checkpoint="run.pt"` (written atomically
every epoch, resumed from when it exists) work the same way.

It returns a run: `start()` returns at once and the kernel stays free. Each step trains the
largest subnet, the smallest and two random ones on the same batch (the *sandwich rule*); the
smaller ones also learn from the largest's predictions (*in-place distillation*). The monitor
below draws the loss of each sandwich member live and the validation accuracy after each epoch;
its buttons pause, resume or stop the run.
"""),
    code("""
from torch.utils.data import DataLoader, TensorDataset

loader = DataLoader(TensorDataset(data.train.X, data.train.y), batch_size=64, shuffle=True)
run = train_supernet(net, loader, val=data.val, epochs=epochs, seed=seed)
monitor = TrainingMonitor(run)
run.start()
monitor
"""),
    md("""
While it trains, this kernel runs other cells at once: `run.status` and `run.history` can be
read at any time (`run.pause()`, `run.resume()` and `run.stop()` work from code too).
"""),
    code(
        """
print(run.status)
run.history.tail()
""",
        "nbval-ignore-output",
    ),
    md("""
The rest of the notebook needs the trained net, so here we wait for the end (a headless run
via papermill does the same), then draw the whole loss history as a static figure.
"""),
    code("""
print(run.wait())
loss_figure(loss_info(run.history))
"""),
    code("""
accuracy_figure(run.evaluations)
"""),
    md("""
## Sample and compare subnets

Every subnet is evaluated straight from the shared weights (for the CNN, batch-norm statistics
are re-calibrated per subnet first, as Once-for-All does). MACs come in closed form from the
supernet, without running the subnet.
"""),
    code("""
acc, params, macs = nasviz.accuracy(data), nasviz.params(), nasviz.macs((1, *data.input_shape))
archs = [net.largest(), net.smallest(), *net.sample(seed, n=8)]
table = pd.DataFrame(
    [{"arch": a.to_json(), "params": params(net, a), "macs": macs(net, a), "accuracy": acc(net, a)} for a in archs]
)
styled(px.scatter(table, x="macs", y="accuracy", size="params", hover_data=["arch"], title="subnets: MACs vs accuracy"))
"""),
    md("""
## Export one

`net.export(arch)` copies the subnet's slices into plain `torch.nn` layers: same outputs, no
nasviz code needed to run it. The trained supernet is saved for the search notebook.
"""),
    code("""
best = table.sort_values("accuracy", ascending=False).iloc[0]
arch = nasviz.Arch.from_json(best["arch"])
model = net.export(arch)
x = data.val.X[:8]
with torch.no_grad(), net.subnet(arch):
    print("max difference:", (model(x) - net(x)).abs().max().item())
print(model)
Path(out_dir).mkdir(parents=True, exist_ok=True)
print("saved", net.save(Path(out_dir) / f"supernet_{family}.pt"))
"""),
]

if __name__ == "__main__":
    write(Path(__file__).with_name("01_supernet.ipynb"), CELLS)
