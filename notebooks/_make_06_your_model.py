"""Generates notebooks/06_your_model.ipynb."""

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

Here a small model stands in for your pre-trained one: a ResNet trained on digits
(`model = "resnet"`), or a Hugging Face Llama built from a config and trained on token sequences
(`model = "llama"`: its layers, attention heads, with grouped-query attention kept valid, and FFN
width become elastic, and every export is a `LlamaForSequenceClassification` that
`save_pretrained` / `from_pretrained` round-trip). It is converted, fine-tuned elastically with
the sandwich rule, searched, and a chosen subnet is exported.
"""),
    params("""
model = "resnet"  # one of: "resnet", "llama" (a ResNet on digits, a Hugging Face Llama on token sequences)
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


def llama(data):
    import transformers

    transformers.utils.logging.disable_progress_bar()  # no progress-bar widgets in a saved report
    config = transformers.LlamaConfig(
        vocab_size=data.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=data.input_shape[0],
        num_labels=data.num_classes, pad_token_id=0,
    )
    return transformers.LlamaForSequenceClassification(config)


if model not in ("resnet", "llama"):
    raise ValueError(f"model must be 'resnet' or 'llama', got {model!r}")
torch.manual_seed(seed)
torch.set_num_threads(1)  # tiny models: one thread is fastest
data = nasviz.data.digits(seed=seed) if model == "resnet" else nasviz.data.tasks(seed=seed)
input_shape = (1, *data.input_shape)  # one image or one token sequence
subset = (data.train.X[:samples], data.train.y[:samples])
net = ResNet() if model == "resnet" else llama(data)
train(net, subset, epochs=pretrain_epochs, batch_size=32, lr=1e-2 if model == "resnet" else 3e-3, seed=seed).run()
net.eval()
print(f"your {type(net).__name__}: {evaluate(net, data, [Accuracy()])['accuracy']:.1f}% on val")
"""),
    md("""
## Convert, and read what became elastic

`sn.report()` lists every module: elastic or static, which dimensions shrink it, and why (here
the modules with parameters of their own).
"""),
    code("""
sn = convert(net, data.val.X[:8])  # width=(0.25, 0.5, 0.75, 1.0), depth=True, share="block"
print(sn.space)
logits = lambda out: getattr(out, "logits", out)  # a Hugging Face model returns an output object
with torch.no_grad():
    print("largest == your model:", (logits(sn(data.val.X)) - logits(net(data.val.X))).abs().max().item())
report = sn.report()
report[report.params > 0]
"""),
    md("""
## Elastic fine-tuning

`train_supernet` trains the largest, the smallest and a random subnet each step (the sandwich
rule); with `teacher="original"` the largest distils from a frozen copy of your model as it
is now (InstaTune), kept in the checkpoint when you give one. The supernet shares your model's
parameters, so this fine-tunes your model in place (keep a copy if you need the original). It
runs in the background; `TrainingMonitor(run)` draws each sandwich member's loss as it trains.
"""),
    code("""
from nasviz.ui import TrainingMonitor

lr = 1e-2 if model == "resnet" else 1e-3
run = train_supernet(sn, subset, epochs=epochs, batch_size=32, lr=lr, n_random=1, teacher="original", seed=seed)
monitor = TrainingMonitor(run)
run.start()  # returns at once: the kernel stays free while it trains
monitor
"""),
    code("""
run.wait()
for name, arch in [("largest", sn.largest()), ("smallest", sn.smallest())]:
    acc = evaluate(sn, data, [Accuracy()], arch=arch)["accuracy"]
    print(f"{name}: {acc:.1f}%, {sn.count_macs(arch, input_shape):,} MACs, {sn.count_params(arch):,} params")
"""),
    md("""
## Search, export, save
"""),
    code("""
from nasviz.ui import SearchDashboard

search = Search(
    sn,
    objectives=[accuracy((data.val.X, data.val.y)), macs(input_shape), params()],
    strategy="random",
    budget=budget,
    storage=":memory:",
    seed=seed,
)
dashboard = SearchDashboard(search)
dashboard
"""),
    code("""
search.start().wait()
front = search.pareto()
front
"""),
    code("""
best = front.sort_values("accuracy", ascending=False).iloc[0]
arch = sn.space.validate({n: best[n] for n in sn.space.names})
small = sn.export(arch)  # your own class again, with smaller layers (no nasviz modules inside)
print(type(small).__name__, sum(p.numel() for p in small.parameters()), "parameters")
print(f"exported: {evaluate(small, data, [Accuracy()])['accuracy']:.1f}% on val")
folder = tempfile.mkdtemp()
if model == "llama":  # a Hugging Face export's config states its sizes
    small.save_pretrained(folder)
    again = type(small).from_pretrained(folder)
    print("reloaded with from_pretrained:", again.config.num_hidden_layers, "layers,",
          again.config.num_attention_heads, "heads,", again.config.intermediate_size, "FFN neurons")
else:
    torch.save(small.state_dict(), f"{folder}/chosen_subnet.pt")  # reload with weights_only=True
"""),
]

if __name__ == "__main__":
    write(Path(__file__).with_name("06_your_model.ipynb"), CELLS)
