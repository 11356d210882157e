"""Training-layer figures: what nasviz's loop costs over a hand-written PyTorch loop, what the
sandwich step costs over plain steps of its subnets, what a DataLoader costs over tensors in
memory, and how much distillation recovers after pruning.

Timing ratios are paired and interleaved: the two sides take turns step by step (or epoch by
epoch for data loading), in one process with one torch thread, and a figure is the median of
the per-pair ratios, so machine load that drifts during the run hits both sides alike.

Run: ``.venv/bin/python -m bench training`` (several minutes on 2 cores; the recovery figures
train two teachers and fine-tune 24 students each).
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bench._report import Figure
from bench._timing import alternate
from nasviz.data import digits
from nasviz.objectives import evaluate_accuracy
from nasviz.prune import channels, shrink
from nasviz.supernet import ElasticCNN, SupernetTrainer
from nasviz.training import Trainer, recover, train
from nasviz.training._recover import _mixed
from nasviz.training._step import SupervisedStep

BATCH = 64
SEEDS = (0, 1, 2)
RECOVER_STEPS = 30
MIXUP = 1.0  # Beta(1, 1): every mixing weight equally likely (not tuned)
LRS = (3e-3, 1e-2)  # recovery learning rates; each method is run at the one its val split picks


def _quartiles(ratios: list[float]) -> str:
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return f"median {median:.3f} [{q1:.2f}-{q3:.2f}] of {len(ratios)} pairs"


class _PlainLoop:
    """The hand-written loop: AdamW, cosine schedule, a seeded permutation per epoch, CE."""

    def __init__(self, model: nn.Module, X: torch.Tensor, y: torch.Tensor, lr: float, total: int):
        self.model, self.X, self.y, self.lr, self.total = model.train(), X, y, lr, total
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        self.per_epoch = math.ceil(len(y) / BATCH)
        self.step_index = 0

    def step(self) -> None:
        epoch, b = divmod(self.step_index, self.per_epoch)
        order = torch.randperm(len(self.y), generator=torch.Generator().manual_seed(epoch))
        idx = order[b * BATCH : (b + 1) * BATCH]
        for group in self.opt.param_groups:
            group["lr"] = self.lr * 0.5 * (1 + math.cos(math.pi * self.step_index / self.total))
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.X[idx]), self.y[idx]).backward()
        self.opt.step()
        self.step_index += 1


def _loop_overhead(data) -> Figure:
    torch.manual_seed(0)
    net = ElasticCNN.for_data(data)
    arch = net.sample(11)
    X, y = data.train.X, data.train.y
    pairs = 120
    ours = Trainer(net.export(arch), (X, y), steps=pairs + 5, batch_size=BATCH, lr=1e-3)
    ours.setup()
    plain = _PlainLoop(net.export(arch), X, y, 1e-3, pairs + 5)
    for _ in range(5):  # warm-up: allocator, first-call paths
        ours.step()
        plain.step()
    ratios = alternate(ours.step, plain.step, pairs)[2]
    ours.teardown("finished")
    ratio = statistics.median(ratios)
    return Figure(
        "training.loop_overhead.cnn_subnet",
        ratio,
        "x",
        f"nasviz's Trainer vs a hand-written AdamW loop on the same exported ElasticCNN subnet, "
        f"digits, batch {BATCH}, per step: {_quartiles(ratios)}",
        "<= 1.05",
        ratio <= 1.05,
    )


def _sandwich_overhead(data) -> list[Figure]:
    torch.manual_seed(0)
    net = ElasticCNN.for_data(data)
    steps = 40
    engine = SupernetTrainer(net, data, batch_size=BATCH, n_random=2, distill=0.0)
    engine.setup()
    members = [[arch for _, arch, _ in engine.members(s)] for s in range(2 * steps + 6)]
    exported = {arch: net.export(arch).train() for step in members for arch in step}
    optimizers = {a: torch.optim.AdamW(m.parameters(), lr=1e-3) for a, m in exported.items()}
    X, y = data.train.X, data.train.y
    batches = [(X[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]) for i in range(19)]
    at = {"plain": 0}

    def plain(updates: str) -> Callable[[], None]:
        def one() -> None:  # the step's 4 subnets, exported, trained as plain static models
            step = at["plain"]
            xb, yb = batches[step % len(batches)]
            for arch in members[step]:
                model, opt = exported[arch], optimizers[arch]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                if updates == "each":
                    opt.step()
            if updates == "one":  # one update of a full-size parameter set, as the sandwich's
                optimizers[members[step][0]].step()
            at["plain"] += 1

        return one

    for _ in range(3):
        engine.step()
        plain("each")()
    each = alternate(engine.step, plain("each"), steps)[2]
    one = alternate(engine.step, plain("one"), steps)[2]
    engine.teardown("finished")
    ratio, fwd_bwd = statistics.median(each), statistics.median(one)
    return [
        Figure(
            "training.sandwich_overhead.cnn",
            ratio,
            "x",
            f"one sandwich step (largest, smallest, 2 random; in-place distillation off) vs 4 "
            f"plain steps (forward, backward, AdamW step each) of the same subnets exported, "
            f"digits, batch {BATCH}: {_quartiles(each)}; the sandwich makes one optimizer "
            "update where the plain steps make four",
            "<= 1.10",
            ratio <= 1.10,
        ),
        Figure(
            "training.sandwich_vs_forward_backward.cnn",
            fwd_bwd,
            "x",
            f"the same sandwich step vs the 4 exported subnets' forward and backward plus one "
            f"AdamW update of the largest (the elastic slicing's own cost in training): "
            f"{_quartiles(one)}",
        ),
    ]


def _data_loading(data) -> list[Figure]:
    """Epochs from a DataLoader with 2 workers vs epochs from the tensors, taking turns."""
    g = torch.Generator().manual_seed(0)
    reps = 8  # digits-sized images, 8x the data: epochs of ~160 steps
    X = torch.cat(
        [data.train.X + 0.01 * torch.randn(data.train.X.shape, generator=g) for _ in range(reps)]
    )
    y = data.train.y.repeat(reps)
    torch.manual_seed(0)
    net = ElasticCNN.for_data(data)
    arch = net.smallest()
    loader = DataLoader(
        TensorDataset(X, y), batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True
    )
    runs = {}
    for name, source in (("loader", loader), ("tensors", (X, y))):
        trainer = Trainer(
            net.export(arch), source, epochs=40, batch_size=None if name == "loader" else BATCH
        )
        trainer.setup()
        runs[name] = trainer

    def epoch(name: str) -> Callable[[], None]:
        trainer = runs[name]

        def one() -> None:
            for _ in range(trainer.length):
                trainer.step()

        return one

    def plain(source: str) -> Callable[[], None]:
        """A hand-written epoch of the same subnet from the same loader or tensors."""
        model = net.export(arch).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(1)

        def one() -> None:
            if source == "loader":
                batches = loader
            else:
                order = torch.randperm(len(y), generator=g)
                batches = ((X[idx], y[idx]) for idx in order.split(BATCH))
            for xb, yb in batches:
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                opt.step()

        return one

    epoch("loader")()
    epoch("tensors")()
    ratios = alternate(epoch("loader"), epoch("tensors"), 8)[2]
    for trainer in runs.values():
        trainer.teardown("finished")
    plain("loader")()
    own = alternate(plain("loader"), plain("tensors"), 8)[2]  # PyTorch alone, the same cost
    ratio = statistics.median(ratios)
    what = (
        f"an epoch ({len(y)} 8x8 images, batch {BATCH}, smallest ElasticCNN subnet) from a "
        f"DataLoader with num_workers=2 (persistent) vs from tensors in memory"
    )
    return [
        Figure(
            "training.dataloader_vs_tensors.cnn",
            ratio,
            "x",
            f"{what}, nasviz's loop: {_quartiles(ratios)}; a plain PyTorch loop pays "
            f"{statistics.median(own):.2f}x for the same loader",
            "<= 1.10",
            ratio <= 1.10,
        ),
        Figure(
            "training.dataloader_vs_tensors.plain_pytorch",
            statistics.median(own),
            "x",
            f"{what}, a hand-written PyTorch loop (the loader's own cost on this machine: 2 "
            f"worker processes share the 2 cores with the training step): {_quartiles(own)}",
        ),
    ]


# ---- recovery after pruning --------------------------------------------------------------------
class _Block(nn.Module):
    """A ResNet basic block: conv-BN-ReLU-conv-BN plus the input."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> (B, C, H, W)
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


def _resnet(classes: int = 10, width: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        _Block(width),
        _Block(width),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        _Block(2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, classes),
    )


class _MixupStep(SupervisedStep):
    """Cross-entropy on the same mixed inputs ``recover(mixup=)`` distils on (the fair
    baseline for distillation with mixup: is the gain the teacher's or the mixing's?)."""

    def __call__(self, trainer, batch, step):
        return super().__call__(trainer, _mixed(batch, MIXUP), step)


def _tuned(make: Callable[[int, float], nn.Module], data) -> tuple[float, list[float], float]:
    """(learning rate, test accuracies per seed, median validation accuracy) of one recovery
    method at the learning rate of ``LRS`` whose median validation accuracy over ``SEEDS`` is
    highest (the smaller rate on a tie): every method gets the same search, on data the test
    figures do not see."""
    best = None
    for lr in LRS:
        models = [make(seed, lr) for seed in SEEDS]
        val = statistics.median(evaluate_accuracy(m, data.val) for m in models)
        if best is None or val > best[2]:
            best = (lr, [evaluate_accuracy(m, data.test) for m in models], val)
    assert best is not None
    return best


def _recovery(name: str, teacher: nn.Module, data) -> list[Figure]:
    train(teacher, data, epochs=6, lr=1e-2, seed=0).run()
    teacher.eval()
    base = evaluate_accuracy(teacher, data.test)
    pruned = shrink(
        teacher,
        channels(teacher, 0.5, example_input=(1, 1, 8, 8)),
        example_input=torch.zeros(1, 1, 8, 8),
    )
    none = evaluate_accuracy(pruned, data.test)

    def method(run: Callable[..., object], **options: object) -> Callable[[int, float], nn.Module]:
        def make(seed: int, lr: float) -> nn.Module:
            student = copy.deepcopy(pruned)
            run(student, data=data, steps=RECOVER_STEPS, lr=lr, seed=seed, **options).run()
            return student

        return make

    def distil(student: nn.Module, **options: object) -> object:
        return recover(student, teacher, **options)

    ce = _tuned(method(train), data)
    kd = _tuned(method(distil), data)
    ce_mix = _tuned(method(train, step=_MixupStep()), data)
    kd_mix = _tuned(method(distil, mixup=MIXUP), data)
    med = lambda run: statistics.median(run[1])  # noqa: E731
    each = lambda run: f"{med(run):.1f}% ({', '.join(f'{a:.1f}' for a in run[1])}; lr {run[0]:g})"  # noqa: E731
    gain, mix_gain = med(kd) - med(ce), med(kd_mix) - med(ce)
    protocol = (
        f"{RECOVER_STEPS} steps each, median of {len(SEEDS)} seeds, each method at its best "
        f"learning rate of {', '.join(f'{lr:g}' for lr in LRS)} on the validation split"
    )
    return [
        Figure(
            f"training.recover_gain.{name}",
            gain,
            "points",
            f"test accuracy, teacher {base:.1f}%, pruned to 50% of channels and shrunk: none "
            f"{none:.1f}%, cross-entropy {each(ce)}, distillation {each(kd)}; {protocol}",
            ">= 1",
            gain >= 1,
        ),
        Figure(f"training.recover_accuracy.{name}", med(kd), "%", "distillation (see gain)"),
        Figure(f"training.finetune_accuracy.{name}", med(ce), "%", "cross-entropy fine-tuning"),
        Figure(f"training.pruned_accuracy.{name}", none, "%", "pruned and shrunk, no recovery"),
        Figure(
            f"training.recover_gain.mixup.{name}",
            mix_gain,
            "points",
            f"distillation with mixup={MIXUP} (teacher and student see the same mixed inputs) "
            f"{each(kd_mix)} minus cross-entropy fine-tuning {med(ce):.1f}%; cross-entropy on "
            f"the same mixed inputs {each(ce_mix)}; {protocol}",
            ">= 1",
            mix_gain >= 1,
        ),
        Figure(
            f"training.finetune_accuracy.mixup.{name}",
            med(ce_mix),
            "%",
            "cross-entropy fine-tuning on the mixed inputs (see the mixup gain)",
        ),
    ]


def run() -> list[Figure]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: intra-op threads only add contention
    try:
        data = digits(seed=0)
        figures = [_loop_overhead(data), *_sandwich_overhead(data), *_data_loading(data)]
        torch.manual_seed(0)
        cnn = ElasticCNN.for_data(data)
        figures += _recovery("elastic_cnn", cnn.export(cnn.largest()).train(), data)
        torch.manual_seed(0)
        figures += _recovery("resnet", _resnet(), data)
    finally:
        torch.set_num_threads(before)
    return figures
