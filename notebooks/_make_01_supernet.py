"""Writes notebooks/01_supernet.ipynb (run: .venv/bin/python notebooks/_make_01_supernet.py)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# 01 · A weight-sharing supernet\n\n"
        "A **supernet** holds the weights of its largest network; every smaller network in its search "
        "space (a *subnet*) reuses slices of them: the first channels, the centre of a kernel, the first "
        "blocks of a stage. Train it once and you can evaluate thousands of subnets without retraining "
        "any of them (the Once-for-All idea). This notebook builds one, trains it in the background, "
        "compares subnets and exports one as a plain PyTorch model."
    ),
    new_code_cell(
        'family = "mlp"  # "mlp" or "cnn"\nepochs = 10  # None: the family\'s default recipe\nseed = 0\nout_dir = "runs/01_supernet"',
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "from pathlib import Path\n\nimport plotly.express as px\nimport torch\n\nimport nasviz\n"
        "from nasviz.supernet import ElasticCNN, ElasticMLP, train_supernet\n\n"
        "torch.manual_seed(seed)\ntorch.set_num_threads(1)  # tiny models: one thread is fastest\n"
        'data = nasviz.data.digits(seed=seed)\nnet = {"mlp": ElasticMLP, "cnn": ElasticCNN}[family].for_data(data)\n'
        'print(net.space)\nprint(f"{net.space.size:,} subnets share {nasviz.objectives.count_params(net):,} parameters")'
    ),
    new_markdown_cell(
        "## Train in the background\n\n`train_supernet` returns a run: `start()` returns at once and the kernel stays free. "
        "Each step trains the largest subnet, the smallest and two random ones on the same batch "
        "(the *sandwich rule*); the smaller ones also learn from the largest's predictions "
        '(*in-place distillation*). Every step emits a `"loss"` event; `run.status` and '
        "`run.history` can be read at any time."
    ),
    new_code_cell(
        "run = train_supernet(net, data, epochs=epochs, seed=seed)\n"
        'last = {}\nrun.subscribe(lambda e: last.update(e.data) if e.kind == "eval" else None)\n'
        "run.start()\nprint(run.status)"
    ),
    new_code_cell(
        "import time\n\nwhile run.status.active:  # the kernel is free: we poll, you could do anything else\n"
        "    time.sleep(1)\n    print(run.status, last)\nprint(run.status)"
    ),
    new_code_cell(
        'history = run.history\npx.line(history, x="step", y="loss", color="member", log_y=True, '
        'title="loss per sandwich member")'
    ),
    new_markdown_cell(
        "## Sample and compare subnets\n\nEvery subnet is evaluated straight from the shared weights "
        "(for the CNN, batch-norm statistics are re-calibrated per subnet first, as Once-for-All does)."
    ),
    new_code_cell(
        "import pandas as pd\n\nacc = nasviz.accuracy(data)\nparams = nasviz.params()\n"
        "archs = [net.largest(), net.smallest(), *net.sample(seed, n=8)]\n"
        'table = pd.DataFrame([{"arch": a.to_json(), "params": params(net, a), "accuracy": acc(net, a)} for a in archs])\n'
        'px.scatter(table, x="params", y="accuracy", hover_data=["arch"], title="subnets: size vs accuracy")'
    ),
    new_markdown_cell(
        "## Export one\n\n`net.export(arch)` copies the subnet's slices into plain `torch.nn` layers: "
        "same outputs, no nasviz code needed to run it. The trained supernet is saved for the search notebook."
    ),
    new_code_cell(
        'best = table.sort_values("accuracy", ascending=False).iloc[0]\narch = nasviz.Arch.from_json(best["arch"])\n'
        "model = net.export(arch)\nx = data.val.X[:8]\nwith torch.no_grad(), net.subnet(arch):\n"
        '    print("max difference:", (model(x) - net(x)).abs().max().item())\nprint(model)\n'
        'Path(out_dir).mkdir(parents=True, exist_ok=True)\nprint("saved", net.save(Path(out_dir) / f"supernet_{family}.pt"))'
    ),
]
nb = new_notebook(cells=cells)
nb.metadata["kernelspec"] = {
    "name": "python3",
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
}
nbformat.write(nb, Path(__file__).with_name("01_supernet.ipynb"))
