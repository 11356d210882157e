"""The bad-input sweep: every row is one bad input, which must raise nasviz's own error type
with a message naming the argument, and leave everything as it was (models' weights, the files
around, torch's random state).

Adding a case is one line in ``CASES``: ``Bad(id, act, error, names)``, or with ``arrange``
when the call needs something made first (a model whose weights must not change, a file).
``arrange(ctx)`` runs before the state is recorded and its result is passed to ``act``; models
made through ``ctx.track`` and files under ``ctx.tmp`` are part of the state.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nasviz import objectives
from nasviz.errors import CheckpointError, ConfigError, MaskError, MoEError, ShapeError, SpaceError
from nasviz.moe import MoEClassifier, RoutingRecorder, prune_experts
from nasviz.prune import Masks, channels, magnitude, random, remove, shrink
from nasviz.search import Search
from nasviz.space import SearchSpace
from nasviz.supernet import (
    ElasticCNN,
    ElasticMLP,
    ElasticTransformer,
    Supernet,
    load_subnet,
    save_subnet,
)
from nasviz.training import load_checkpoint, save_checkpoint


class Ctx:
    """What a case may arrange: tracked models and files in a temporary folder."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.tracked: list[nn.Module] = []

    def track(self, model: nn.Module) -> nn.Module:
        """``model``, whose weights (and buffers) must not change."""
        self.tracked.append(model)
        return model

    def mlp(self) -> ElasticMLP:
        torch.manual_seed(0)
        return self.track(ElasticMLP())

    def linear(self) -> nn.Sequential:
        torch.manual_seed(0)
        return self.track(nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)))

    def file(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def truncated(self, path: Path) -> Path:
        data = path.read_bytes()
        return self.file(f"truncated-{path.name}", data[: len(data) // 2])

    def checkpoint(self) -> Path:
        torch.manual_seed(0)
        return ElasticMLP(widths=(16, 32)).save(self.tmp / "mlp.pt")

    def masks_file(self) -> Path:
        torch.manual_seed(1)
        return magnitude(nn.Linear(6, 5), 0.5).save(self.tmp / "masks.npz")

    def channel_masks(self) -> tuple[nn.Module, Masks]:
        """A tracked MLP and channel masks of it."""
        model = self.linear()
        return model, channels(model, 0.5, example_input=torch.randn(2, 8))

    def moe(self) -> tuple[nn.Module, Any]:
        """A tracked tiny MoE classifier and routing stats recorded from it."""
        from nasviz.data import tasks

        data = tasks(n_per_task=10, seq_len=8, tokens_per_task=4, seed=0)
        torch.manual_seed(0)
        model = MoEClassifier.for_data(data, dim=8, hidden=8, num_experts=4, top_k=2).eval()
        with torch.no_grad(), RoutingRecorder(model) as rec:
            model(data.test.X)
        return self.track(model), rec.stats()

    def training_checkpoint(self) -> Path:
        return save_checkpoint({"step": 3, "w": torch.ones(4)}, self.tmp / "train.pt")

    def foreign_pickle(self) -> Path:
        torch.save({"format": "nasviz.supernet/1", "data": _Foreign()}, self.tmp / "evil.pt")
        return self.tmp / "evil.pt"


class _Foreign:
    """An object a weights-only load must refuse."""


def _state(ctx: Ctx) -> tuple:
    """Everything a failed call must leave as it was."""

    def digest(model: nn.Module) -> str:
        h = hashlib.sha256()
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    files = sorted(
        (str(p.relative_to(ctx.tmp)), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in ctx.tmp.rglob("*")
        if p.is_file()
    )
    rng = torch.random.get_rng_state().numpy().tobytes()
    return [digest(m) for m in ctx.tracked], files, rng, np.random.get_state()[1].tobytes()


@dataclass(frozen=True)
class Bad:
    """One bad input.

    Attributes:
        id: the case's name in the test report.
        act: the call, given ``arrange``'s result.
        error: the nasviz error type it must raise.
        names: a regex the message must contain: the argument's name (``{arg}`` stands for
            ``arrange``'s result, e.g. a file's path).
        arrange: makes what the call needs, before the state is recorded.
    """

    id: str
    act: Callable[[Any], object]
    error: type[Exception]
    names: str
    arrange: Callable[[Ctx], Any] = lambda ctx: None


CASES = [
    # ---- supernet constructors ----------------------------------------------------------------
    Bad("cnn in_channels=0", lambda _: ElasticCNN(in_channels=0), ConfigError, "in_channels"),
    Bad("cnn in_channels=1.5", lambda _: ElasticCNN(in_channels=1.5), ConfigError, "in_channels"),
    Bad("cnn num_classes=1", lambda _: ElasticCNN(num_classes=1), ConfigError, "num_classes"),
    Bad("cnn input_size=0", lambda _: ElasticCNN(input_size=0), ConfigError, "input_size"),
    Bad("cnn input_size=True", lambda _: ElasticCNN(input_size=True), ConfigError, "input_size"),
    Bad("cnn stem_channels=0", lambda _: ElasticCNN(stem_channels=0), ConfigError, "stem_channels"),
    Bad("cnn stage 0 channels", lambda _: ElasticCNN(stage_channels=(0, 8, 8)), ConfigError, "stage_channels"),
    Bad("cnn stride 0", lambda _: ElasticCNN(strides=(0, 1, 2)), ConfigError, "strides"),
    Bad("cnn stages != strides", lambda _: ElasticCNN(strides=(2, 1)), ConfigError, "stage_channels and strides"),
    Bad("cnn even kernels", lambda _: ElasticCNN(kernels=(2, 4)), ConfigError, "kernels"),
    Bad("cnn kernel 3.5", lambda _: ElasticCNN(kernels=(3.5,)), ConfigError, "kernels"),
    Bad("cnn kernels 'abc'", lambda _: ElasticCNN(kernels="abc"), ConfigError, "kernels"),
    Bad("cnn kernels 3", lambda _: ElasticCNN(kernels=3), ConfigError, "kernels"),
    Bad("cnn no depths", lambda _: ElasticCNN(depths=()), ConfigError, "depths"),
    Bad("cnn depth 0", lambda _: ElasticCNN(depths=(0, 2)), ConfigError, "depths"),
    Bad("cnn expand 0", lambda _: ElasticCNN(expands=(0,)), ConfigError, "expands"),
    Bad("cnn kernel_transform 'yes'", lambda _: ElasticCNN(kernel_transform="yes"), ConfigError, "kernel_transform"),
    Bad("cnn for_data flat", lambda d: ElasticCNN.for_data(d), ConfigError, "input_shape", lambda c: _digits(flat=True)),
    Bad("mlp widths 32.7", lambda _: ElasticMLP(widths=(32.7, 64)), ConfigError, "widths"),
    Bad("mlp widths 'abc'", lambda _: ElasticMLP(widths="abc"), ConfigError, "widths"),
    Bad("mlp widths 64", lambda _: ElasticMLP(widths=64), ConfigError, "widths"),
    Bad("mlp no widths", lambda _: ElasticMLP(widths=()), ConfigError, "widths"),
    Bad("mlp depth 0", lambda _: ElasticMLP(depths=(0,)), ConfigError, "depths"),
    Bad("mlp depth True", lambda _: ElasticMLP(depths=(True, 2)), ConfigError, "depths"),
    Bad("mlp in_features=0", lambda _: ElasticMLP(in_features=0), ConfigError, "in_features"),
    Bad("mlp in_features=2.5", lambda _: ElasticMLP(in_features=2.5), ConfigError, "in_features"),
    Bad("mlp num_classes=1", lambda _: ElasticMLP(num_classes=1), ConfigError, "num_classes"),
    Bad("mlp num_classes '10'", lambda _: ElasticMLP(num_classes="10"), ConfigError, "num_classes"),
    Bad("transformer vocab_size=0", lambda _: ElasticTransformer(0, 12, 2), ConfigError, "vocab_size"),
    Bad("transformer vocab_size=2.5", lambda _: ElasticTransformer(2.5, 12, 2), ConfigError, "vocab_size"),
    Bad("transformer seq_len=0", lambda _: ElasticTransformer(40, 0, 2), ConfigError, "seq_len"),
    Bad("transformer num_classes=1", lambda _: ElasticTransformer(40, 12, 1), ConfigError, "num_classes"),
    Bad("transformer dim=0", lambda _: ElasticTransformer(40, 12, 2, dim=0), ConfigError, "dim"),
    Bad("transformer head_dim=0", lambda _: ElasticTransformer(40, 12, 2, head_dim=0), ConfigError, "head_dim"),
    Bad("transformer heads 0", lambda _: ElasticTransformer(40, 12, 2, heads=(0,)), ConfigError, "heads"),
    Bad("transformer heads 1.5", lambda _: ElasticTransformer(40, 12, 2, heads=(1.5,)), ConfigError, "heads"),
    Bad("transformer heads 'ab'", lambda _: ElasticTransformer(40, 12, 2, heads="ab"), ConfigError, "heads"),
    Bad("transformer no ffn_widths", lambda _: ElasticTransformer(40, 12, 2, ffn_widths=()), ConfigError, "ffn_widths"),
    Bad("transformer layers 0", lambda _: ElasticTransformer(40, 12, 2, layers=(0,)), ConfigError, "layers"),
    Bad("transformer moe 'yes'", lambda _: ElasticTransformer(40, 12, 2, moe="yes"), ConfigError, "moe"),
    Bad("moe experts 0", lambda _: ElasticTransformer(40, 12, 2, moe=True, experts=(0,)), ConfigError, "experts"),
    Bad("moe no experts", lambda _: ElasticTransformer(40, 12, 2, moe=True, experts=()), ConfigError, "experts"),
    Bad("moe top_ks 1.5", lambda _: ElasticTransformer(40, 12, 2, moe=True, top_ks=(1.5,)), ConfigError, "top_ks"),
    Bad("moe top_ks > experts", lambda _: ElasticTransformer(40, 12, 2, moe=True, top_ks=(3,)), ConfigError, "top_ks"),
    Bad("transformer for_data digits", lambda d: ElasticTransformer.for_data(d), ConfigError, "token sequences", lambda c: _digits()),
    Bad("from_config of another family", lambda n: ElasticCNN.from_config(n.config), ConfigError, "CNNConfig", lambda c: c.mlp()),
    # ---- supernets in use ---------------------------------------------------------------------
    Bad("forward: wrong shape", lambda a: a[0](a[1]), ShapeError, "input of shape", lambda c: (c.mlp(), torch.ones(4, 63))),
    Bad("forward: float64", lambda a: a[0](a[1]), ShapeError, "float32", lambda c: (c.mlp(), torch.ones(4, 64, dtype=torch.float64))),
    Bad("forward: a list", lambda n: n([1, 2]), ShapeError, "tensor", lambda c: c.mlp()),
    Bad("forward: ids out of vocabulary", lambda n: n(torch.full((2, 12), 40)), ShapeError, "token ids in 0..39", lambda c: c.track(ElasticTransformer(40, 12, 2))),
    Bad("forward: sequence too long", lambda n: n(torch.zeros(2, 13, dtype=torch.long)), ShapeError, "T <= 12", lambda c: c.track(ElasticTransformer(40, 12, 2))),
    Bad("subnet: value not allowed", lambda n: n.subnet({**n.largest(), "depth": 9}).__enter__(), SpaceError, "depth", lambda c: c.mlp()),
    Bad("subnet: unknown dimension", lambda n: n.subnet({**n.largest(), "nope": 1}).__enter__(), SpaceError, "nope", lambda c: c.mlp()),
    Bad("export: missing dimensions", lambda n: n.export({"depth": 1}), SpaceError, "width.0", lambda c: c.mlp()),
    Bad("count_macs: batch 0", lambda n: n.count_macs(n.largest(), (0, 64)), ShapeError, "input_shape", lambda c: c.mlp()),
    Bad("count_macs: wrong features", lambda n: n.count_macs(n.largest(), (2, 63)), ShapeError, "ElasticMLP expects", lambda c: c.mlp()),
    # ---- checkpoints ----------------------------------------------------------------------------
    Bad("load_supernet: no file", lambda p: Supernet.load(p / "missing.pt"), CheckpointError, "missing.pt", lambda c: c.tmp),
    Bad("load_supernet: truncated", Supernet.load, CheckpointError, "{arg}.*truncated", lambda c: c.truncated(c.checkpoint())),
    Bad("load_supernet: random bytes", Supernet.load, CheckpointError, "{arg}", lambda c: c.file("junk.pt", bytes(range(256)) * 4)),
    Bad("load_supernet: empty file", Supernet.load, CheckpointError, "{arg}.*empty", lambda c: c.file("empty.pt", b"")),
    Bad("load_supernet: pickled objects", Supernet.load, CheckpointError, "{arg}.*other than tensors", lambda c: c.foreign_pickle()),
    Bad("load_supernet: another family", lambda p: ElasticCNN.load(p), CheckpointError, "expected an ElasticCNN", lambda c: c.checkpoint()),
    Bad("load_subnet: a supernet file", load_subnet, CheckpointError, "holds a supernet", lambda c: c.checkpoint()),
    Bad("load_supernet: a subnet file", Supernet.load, CheckpointError, "holds an exported subnet", lambda c: save_subnet(c.mlp(), c.tracked[0].smallest(), c.tmp / "sub.pt")),
    Bad("load_weights: another config", lambda a: a[0].load_weights(a[1]), CheckpointError, "widths=", lambda c: (c.mlp(), c.checkpoint())),
    Bad("load_weights: truncated", lambda a: a[0].load_weights(a[1]), CheckpointError, "truncated", lambda c: (c.mlp(), c.truncated(c.checkpoint()))),
    # ---- pruning masks ------------------------------------------------------------------------
    Bad("magnitude: sparsity 1", lambda m: magnitude(m, 1.0), MaskError, "sparsity", lambda c: c.linear()),
    Bad("magnitude: sparsity 'half'", lambda m: magnitude(m, "half"), MaskError, "sparsity", lambda c: c.linear()),
    Bad("magnitude: sparsity nan", lambda m: magnitude(m, float("nan")), MaskError, "sparsity", lambda c: c.linear()),
    Bad("magnitude: scope", lambda m: magnitude(m, 0.5, scope="all"), ConfigError, "scope", lambda c: c.linear()),
    Bad("magnitude: unknown include", lambda m: magnitude(m, 0.5, include=["x.weight"]), ConfigError, "include", lambda c: c.linear()),
    Bad("magnitude: not a model", lambda _: magnitude("model", 0.5), MaskError, "model"),
    Bad("random: sparsity -0.1", lambda m: random(m, -0.1), MaskError, "sparsity", lambda c: c.linear()),
    Bad("random: distribution", lambda m: random(m, 0.5, "gauss"), ConfigError, "distribution", lambda c: c.linear()),
    Bad("Masks: empty", lambda _: Masks({}), MaskError, "non-empty mapping"),
    Bad("Masks: another model's shape", lambda m: Masks({"0.weight": torch.ones(3, 3)}, model=m), MaskError, "'0.weight'.*shape", lambda c: c.linear()),
    Bad("Masks: unknown parameter", lambda m: Masks({"9.weight": torch.ones(4, 8)}, model=m), MaskError, "'9.weight'", lambda c: c.linear()),
    Bad("Masks.apply: another model", lambda m: Masks({"0.weight": torch.ones(3, 3)}).apply(m), MaskError, "'0.weight'", lambda c: c.linear()),
    Bad("remove: not a model", lambda _: remove("model"), MaskError, "model"),
    Bad("Masks.load: no file", lambda p: Masks.load(p / "missing.npz"), CheckpointError, "missing.npz", lambda c: c.tmp),
    Bad("Masks.load: truncated", Masks.load, CheckpointError, "{arg}.*truncated", lambda c: c.truncated(c.masks_file())),
    Bad("Masks.load: empty file", Masks.load, CheckpointError, "{arg}.*truncated", lambda c: c.file("empty.npz", b"")),
    Bad("Masks.load: random bytes", Masks.load, CheckpointError, "{arg}", lambda c: c.file("junk.npz", bytes(range(256)) * 2)),
    Bad("Masks.load: another npz", Masks.load, CheckpointError, "{arg}", lambda c: _npz(c.tmp / "other.npz")),
    Bad("Masks.load: another model", lambda a: Masks.load(a[0], model=a[1]), MaskError, "another model", lambda c: (c.masks_file(), c.linear())),
    Bad("shrink: example_input (1, 3)", lambda a: shrink(*a, example_input=(1, 3)), ShapeError, r"input of shape \(1, 3\)", lambda c: c.channel_masks()),
    Bad("shrink: example_input wrong shape", lambda a: shrink(*a, example_input=torch.ones(2, 5)), ShapeError, r"input of shape \(2, 5\)", lambda c: c.channel_masks()),
    # ---- training checkpoints -----------------------------------------------------------------
    Bad("load_checkpoint: truncated", load_checkpoint, CheckpointError, "{arg}.*truncated", lambda c: c.truncated(c.training_checkpoint())),
    Bad("load_checkpoint: random bytes", load_checkpoint, CheckpointError, "{arg}", lambda c: c.file("junk-train.pt", bytes(range(256)) * 4)),
    Bad("load_checkpoint: pickled objects", load_checkpoint, CheckpointError, "{arg}.*other than tensors", lambda c: c.foreign_pickle()),
    # ---- mixture of experts -------------------------------------------------------------------
    Bad("prune_experts: stats a string", lambda a: prune_experts(a[0], "stats", 2), MoEError, "stats must be the RoutingStats", lambda c: c.moe()),
    Bad("prune_experts: keep=2.7", lambda a: prune_experts(*a, 2.7), MoEError, "keep must be an int.*2.7", lambda c: c.moe()),
    Bad("prune_experts: keep=0", lambda a: prune_experts(*a, 0), MoEError, "keep", lambda c: c.moe()),
    Bad("prune_experts: keep={layer: 1.5}", lambda a: prune_experts(*a, dict.fromkeys(_moe_names(a[0]), 1.5)), MoEError, "keep\\[", lambda c: c.moe()),
    # ---- objectives: MACs and latency ---------------------------------------------------------
    Bad("count_macs: wrong input shape", lambda m: objectives.count_macs(m, (2, 5)), ShapeError, r"shape \(2, 5\)", lambda c: c.linear()),
    Bad("count_macs: shape 'abc'", lambda m: objectives.count_macs(m, "abc"), ShapeError, "input_shape", lambda c: c.linear()),
    Bad("measure_latency: wrong input shape", lambda m: objectives.measure_latency(m, (2, 5), repeats=2, warmup=1), ShapeError, r"shape \(2, 5\)", lambda c: c.linear()),
    # ---- data ---------------------------------------------------------------------------------
    Bad("from_arrays: NaN in X", lambda x: _from_arrays(x), ConfigError, r"X contains 3 NaN or infinite values in 2 rows \(rows 1, 5; columns 0, 2\)", lambda c: _with_nan()),
    # ---- search -------------------------------------------------------------------------------
    Bad("Search: seed=-1", lambda p: _search(p, seed=-1), ConfigError, "seed", lambda c: c.tmp),
    Bad("Search: seed=2.5", lambda p: _search(p, seed=2.5), ConfigError, "seed", lambda c: c.tmp),
    Bad("Search: budget=0", lambda p: _search(p, budget=0), ConfigError, "budget", lambda c: c.tmp),
    Bad("Search: budget=10.0", lambda p: _search(p, budget=10.0), ConfigError, "budget", lambda c: c.tmp),
]  # fmt: skip


def _moe_names(model: nn.Module) -> list[str]:
    from nasviz.moe import MoE

    return [name for name, m in model.named_modules() if isinstance(m, MoE)]


def _with_nan() -> np.ndarray:
    X = np.arange(24, dtype=np.float32).reshape(8, 3)
    X[1, 0], X[5, 2], X[5, 0] = np.nan, np.inf, np.nan
    return X


def _from_arrays(X: np.ndarray):
    from nasviz.data import from_arrays

    return from_arrays(X, np.arange(len(X)) % 2)


def _loss(arch) -> dict:
    return {"loss": float(arch["x"])}


def _search(folder: Path, **kwargs) -> Search:
    """A search storing in ``folder`` (a refused one must create no file there)."""
    return Search(
        _loss,
        space=SearchSpace({"x": [0, 1, 2, 3]}),
        objectives=[("loss", "minimize")],
        storage=str(folder / "search.db"),
        **kwargs,
    )


def _digits(flat: bool = False):
    from nasviz.data import digits

    return digits(flat=flat)


def _npz(path: Path) -> Path:
    np.savez(path, a=np.zeros(3))
    return path


def _id(case: Bad) -> str:
    return case.id


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_bad_input_raises_a_nasviz_error_naming_the_argument_and_changes_nothing(case, tmp_path):
    ctx = Ctx(tmp_path)
    arranged = case.arrange(ctx)
    before = _state(ctx)
    with pytest.raises(case.error) as info:
        case.act(arranged)
    assert type(info.value).__module__ == "nasviz.errors", type(info.value)  # not a raw error
    pattern = case.names.replace("{arg}", re.escape(str(arranged)))
    assert re.search(pattern, str(info.value)), (pattern, str(info.value))
    assert "weights_only=False" not in str(info.value) and "allow_pickle" not in str(info.value)
    assert _state(ctx) == before


def test_numpy_ints_are_ints_everywhere(tmp_path):
    """Checks take numpy integers as ints (``Search(budget=np.int64(10))`` used to be refused)."""
    search = _search(tmp_path, budget=np.int64(3), seed=np.int64(1))
    assert search.budget == 3 and type(search.budget) is int
    assert ElasticMLP(widths=(np.int64(16), 32), num_classes=np.int32(3)).config.widths == (16, 32)


def test_a_function_returning_a_string_fails_its_evaluations_naming_the_objective(tmp_path):
    """``{"loss": "1.0"}`` is a bug in the function, not the number 1.0: every evaluation is
    recorded as failed, with a message naming the objective and what it got."""
    search = Search(
        lambda arch: {"loss": str(arch["x"])},
        space=SearchSpace({"x": [0, 1, 2, 3]}),
        objectives=[("loss", "minimize")],
        storage=":memory:",
        budget=3,
        seed=0,
    )
    assert search.start().wait(timeout=60).state == "failed"
    results = search.results
    assert len(results) == 3 and (results["state"] == "FAIL").all()
    assert results["loss"].isna().all()
    for error in results["error"]:
        assert "objective 'loss' must be a number, got '" in error and "(str)" in error
