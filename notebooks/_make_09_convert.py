"""Generates notebooks/09_convert.ipynb."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# Bring your own model: convert a trained PyTorch model into a supernet

`nasviz.supernet.convert(model, example_input)` makes *your* model a weight-sharing supernet:
its channel groups (found by Torch-Pruning's dependency graph, so residual-coupled channels stay
coupled) get elastic widths, and runs of shape-preserving blocks in an `nn.Sequential` /
`nn.ModuleList` get elastic depth. The largest subnet **is** your model (same outputs, same
parameter tensors: nothing is copied), and `sn.export(arch)` gives back a model of your own
classes with smaller layers.

Here a small ResNet is trained on digits (standing in for your pre-trained model), converted,
fine-tuned elastically with the sandwich rule, searched, and a chosen subnet is exported.
"""),
    params("""
seed = 0
pretrain_epochs = 3  # training the "pre-trained" model
epochs = 2  # elastic fine-tuning of the converted supernet
budget = 6  # subnets the search evaluates
samples = 400  # training images used (small, so the notebook stays fast)
"""),
    code("""
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

import nasviz
from nasviz.objectives import accuracy, macs, params
from nasviz.search import Search
from nasviz.supernet import convert, train_supernet
from nasviz.training import Accuracy, evaluate, train


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.short is None else self.short(x)))


class ResNet(nn.Module):
    def __init__(self, width=8, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 2 * width))
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(x.mean((2, 3)))


torch.manual_seed(seed)
torch.set_num_threads(1)  # tiny models: one thread is fastest
data = nasviz.data.digits(seed=seed)
subset = (data.train.X[:samples], data.train.y[:samples])
model = ResNet()
train(model, subset, epochs=pretrain_epochs, batch_size=32, lr=1e-2, seed=seed).run()
model.eval()
print(f"your model: {evaluate(model, data, [Accuracy()])['accuracy']:.1f}% on val")
"""),
    md("""
## Convert, and read what became elastic

`sn.report()` lists every module: elastic or static, which dimensions shrink it, and why.
"""),
    code("""
sn = convert(model, data.val.X[:8])  # width=(0.25, 0.5, 0.75, 1.0), depth=True, share="block"
print(sn.space)
with torch.no_grad():
    print("largest == your model:", (sn(data.val.X) - model(data.val.X)).abs().max().item())
sn.report()
"""),
    md("""
## Elastic fine-tuning

`train_supernet` trains the largest, the smallest and a random subnet each step (the sandwich
rule); with `teacher="original"` the largest distils from a frozen copy of your model as it
is now (InstaTune), kept in the checkpoint when you give one. The supernet shares your model's
parameters, so this fine-tunes your model in place (keep a copy if you need the original). Use
`.start()` instead of `.run()` and `nasviz.ui.TrainingMonitor(run)` to watch it in the
background.
"""),
    code("""
run = train_supernet(sn, subset, epochs=epochs, batch_size=32, lr=1e-2, n_random=1, teacher="original", seed=seed)
run.run()
for name, arch in [("largest", sn.largest()), ("smallest", sn.smallest())]:
    acc = evaluate(sn, data, [Accuracy()], arch=arch)["accuracy"]
    print(f"{name}: {acc:.1f}%, {sn.count_macs(arch, (1, 1, 8, 8)):,} MACs, {sn.count_params(arch):,} params")
"""),
    md("""
## Search, export, save
"""),
    code("""
search = Search(
    sn,
    objectives=[accuracy((data.val.X, data.val.y)), macs((1, 1, 8, 8)), params()],
    strategy="random",
    budget=budget,
    storage=":memory:",
    seed=seed,
)
search.start().wait()
front = search.pareto()
front
"""),
    code("""
best = front.sort_values("accuracy", ascending=False).iloc[0]
arch = sn.space.validate({n: best[n] for n in sn.space.names})
small = sn.export(arch)  # a ResNet again, with smaller layers (no nasviz modules inside)
print(type(small).__name__, sum(p.numel() for p in small.parameters()), "parameters")
print(f"exported: {evaluate(small, data, [Accuracy()])['accuracy']:.1f}% on val")
folder = tempfile.mkdtemp()
torch.save(small.state_dict(), f"{folder}/chosen_subnet.pt")  # reload with weights_only=True
"""),
]

if __name__ == "__main__":
    write(Path(__file__).with_name("09_convert.ipynb"), CELLS)
