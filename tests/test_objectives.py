"""Objectives, checked against hand-computed counts."""

from __future__ import annotations

import contextlib
import statistics

import numpy as np
import pytest
import torch
from torch import nn

from nasviz import (
    ConfigError,
    ElasticCNN,
    ElasticMLP,
    ElasticTransformer,
    Objective,
    ShapeError,
    accuracy,
    latency,
    macs,
    params,
)
from nasviz import objectives as objectives_module
from nasviz.data import from_arrays
from nasviz.objectives import as_objective, count_macs, count_params, measure_latency


def test_linear_params_and_macs_by_hand():
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    assert params()(model) == 20 * 30 + 30 + 30 * 5 + 5
    assert macs((1, 20))(model) == 20 * 30 + 30 * 5
    assert count_macs(model, (8, 20)) == 8 * (20 * 30 + 30 * 5)  # batch scales MACs


def test_conv_params_and_macs_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),  # 16x16 out
        nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, bias=False),  # depthwise, 8x8 out
        nn.Conv2d(16, 8, 1),  # pointwise
    )
    expected_params = (16 * 3 * 9 + 16) + (16 * 1 * 9) + (8 * 16 + 8)
    expected_macs = 16 * 16 * 16 * 3 * 9 + 8 * 8 * 16 * 9 + 8 * 8 * 8 * 16
    assert params()(model) == expected_params
    assert macs((1, 3, 16, 16))(model) == expected_macs


def test_shared_and_frozen_parameters():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, shared)
    assert count_params(model) == 20
    model2 = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model2[0].requires_grad_(False)
    assert count_params(model2, trainable_only=True) == 10
    assert params(trainable_only=True)(model2) == 10


def test_macs_wrong_shape_is_a_shape_error():
    model = nn.Linear(20, 3)
    with pytest.raises(ShapeError, match=r"input of shape \(1, 7\) failed"):
        macs((1, 7))(model)
    with pytest.raises(ShapeError, match="tuple of positive ints"):
        count_macs(model, (1, -2))


class _FakeSupernet(nn.Module):
    """Has the supernet protocol plus a closed-form ``count_macs`` returning a sentinel."""

    SENTINEL = 123_456_789

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5, 3)
        self.asked: list[tuple[object, tuple[int, ...]]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 5) -> (B, 3)
        return self.linear(x)

    @contextlib.contextmanager
    def subnet(self, arch):
        raise AssertionError("the fast path must not activate the subnet")
        yield

    def export(self, arch):
        raise AssertionError("the fast path must not export the subnet")

    def count_macs(self, arch, input_shape):
        self.asked.append((arch, input_shape))
        return self.SENTINEL


def test_macs_uses_a_supernets_closed_form_count(monkeypatch):
    import torch.utils.flop_counter

    class NoCounting:
        def __init__(self, *args, **kwargs):
            raise AssertionError("FlopCounterMode must not run on the fast path")

    net, arch = _FakeSupernet(), {"width": 3}
    assert count_macs(net, (2, 5)) == 2 * 5 * 3  # no arch: the module itself is counted
    monkeypatch.setattr(torch.utils.flop_counter, "FlopCounterMode", NoCounting)
    assert macs((2, 5))(net, arch) == float(_FakeSupernet.SENTINEL)
    assert count_macs(net, [4, 5], arch) == _FakeSupernet.SENTINEL
    assert net.asked == [(arch, (2, 5)), (arch, (4, 5))]  # the shape arrives as a tuple
    with pytest.raises(ShapeError, match="tuple of positive ints"):
        count_macs(net, (0, 5), arch)  # checked before the fast path
    assert len(net.asked) == 2


def _tiny_supernets():
    return [
        (ElasticMLP(12, 3, widths=(4, 8), depths=(1, 2)), (3, 12)),
        (
            ElasticCNN(
                1, 3, 8, stem_channels=4, stage_channels=(4, 6), strides=(2, 1),
                kernels=(3, 5), expands=(1, 2), depths=(1, 2),
            ),
            (2, 1, 8, 8),
        ),
        (ElasticTransformer(11, 6, 3, dim=8, head_dim=4, layers=(1, 2), heads=(1, 2), ffn_widths=(8, 16)), (2, 6)),
    ]  # fmt: skip


@pytest.mark.parametrize(("net", "shape"), _tiny_supernets(), ids=lambda v: type(v).__name__)
def test_macs_of_a_supernet_arch_equal_the_flop_counter_on_its_export(net, shape):
    # uses the supernet's count_macs when it has one, FlopCounterMode on the active subnet
    # otherwise: either way the objective must equal the count of the exported module
    objective = macs(shape)
    for arch in [net.space.smallest(), net.space.largest(), *net.space.sample(0, n=3)]:
        expected = count_macs(net.export(arch), shape)
        assert expected > 0
        assert objective(net, arch) == expected, (arch, hasattr(net, "count_macs"))


class _Clocked(nn.Module):
    """A model whose n-th forward takes ``durations_ms[n]`` on a fake clock, and records it.

    The fake clock replaces the timer measure_latency reads, so the measured samples are
    exactly the designed durations: no wall-clock noise, nothing slept.
    """

    def __init__(self, durations_ms: list[float], monkeypatch: pytest.MonkeyPatch):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.durations_ms = durations_ms
        self.calls = 0
        self.threads_seen: list[int] = []
        self.now = 0.0
        monkeypatch.setattr(objectives_module, "_clock", lambda: self.now)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 4) -> (B, 2)
        self.now += self.durations_ms[self.calls] / 1e3
        self.calls += 1
        self.threads_seen.append(torch.get_num_threads())
        return self.linear(x)


# 3 warm-up calls far slower than any timed one, then 5 timed calls whose mean (82.2) is far
# from their median (3): a mean, an included warm-up or a wrong count all change the result
WARMUP_MS, TIMED_MS = [900.0, 800.0, 700.0], [5.0, 1.0, 400.0, 3.0, 2.0]


def test_latency_is_the_median_of_the_timed_runs_after_warmup(monkeypatch):
    model = _Clocked(WARMUP_MS + TIMED_MS, monkeypatch)
    m = measure_latency(model, (2, 4), repeats=5, warmup=3)
    assert model.calls == 3 + 5  # warm-up + repeats, nothing more
    assert m.samples_ms == pytest.approx(TIMED_MS)  # warm-up excluded, in call order
    assert m.median_ms == pytest.approx(3.0) != statistics.mean(TIMED_MS)
    assert m.p10_ms <= m.median_ms <= m.p90_ms
    assert (m.repeats, m.warmup, m.input_shape) == (5, 3, (2, 4))


@pytest.mark.parametrize("repeats", [1, 4, 7])
def test_latency_honours_repeats(monkeypatch, repeats):
    model = _Clocked([float(i + 1) for i in range(2 + repeats)], monkeypatch)
    m = measure_latency(model, (1, 4), repeats=repeats, warmup=2)
    assert model.calls == 2 + repeats and len(m.samples_ms) == repeats
    assert m.median_ms == pytest.approx(statistics.median(range(3, 3 + repeats)))


def test_latency_records_the_thread_count_it_ran_with(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = _Clocked([1.0] * 20, monkeypatch)
        m = measure_latency(model, (1, 4), repeats=3, warmup=1)  # threads=None: the current
        assert m.threads == 2 and model.threads_seen == [2] * 4
        m = measure_latency(model, (1, 4), repeats=3, warmup=1, threads=1)
        assert m.threads == 1 and model.threads_seen[4:] == [1] * 4
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)


def test_latency_objective_reports_the_median_and_restores_train_mode(monkeypatch):
    model = _Clocked(WARMUP_MS + TIMED_MS, monkeypatch)
    obj = latency((4,), batch=2, repeats=5, warmup=3)
    assert obj(model) == pytest.approx(3.0)
    assert obj.last.input_shape == (2, 4) and obj.last.samples_ms == pytest.approx(TIMED_MS)
    assert obj.direction == "minimize" and obj.unit == "ms"
    assert model.training  # restored


def test_latency_of_a_real_model_is_positive():
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    m = measure_latency(model, (4, 64), repeats=3, warmup=1, threads=1)
    assert m.median_ms > 0 and m.threads == 1 and len(m.samples_ms) == 3


@pytest.mark.parametrize(
    ("build", "error", "needle"),
    [
        (lambda: latency("abc"), ShapeError, r"input_shape .* tuple of positive ints, got 'abc'"),
        (lambda: latency((4,), batch=0), ConfigError, "batch must be an int >= 1, got 0"),
        (lambda: latency((4,), batch=2.5), ConfigError, "batch must be an int >= 1, got 2.5"),
        (lambda: latency((4,), threads=0), ConfigError, r"threads .* int >= 1, got 0"),
        (lambda: latency((4,), repeats=0), ConfigError, "repeats must be an int >= 1"),
        (lambda: latency((4,), warmup=-1), ConfigError, "warmup must be an int >= 0"),
        (lambda: macs((1, -2)), ShapeError, r"tuple of positive ints, got \(1, -2\)"),
        (lambda: macs("1x20"), ShapeError, "tuple of positive ints"),
        (lambda: accuracy([1, 2, 3]), ConfigError, "accuracy data must be"),
        (lambda: accuracy((torch.zeros(2, 2), torch.zeros(2)), 0), ConfigError, "batch_size"),
    ],
)
def test_bad_objective_arguments_fail_when_the_objective_is_built(build, error, needle):
    with pytest.raises(error, match=needle):
        build()


def test_wrong_input_shape_is_a_shape_error_for_every_forward_objective():
    model = nn.Linear(20, 3)
    needle = r"forward pass on an input of shape \(2, 7\) failed"
    with pytest.raises(ShapeError, match=needle):
        macs((2, 7))(model)
    with pytest.raises(ShapeError, match=needle):
        latency((7,), batch=2, repeats=1, warmup=0)(model)
    with pytest.raises(ShapeError, match=needle):
        accuracy((torch.randn(2, 7), torch.zeros(2, dtype=torch.long)))(model)
    assert model.training  # restored after the failure too


def test_objectives_on_a_non_module_are_config_errors():
    for objective in (params(), macs((1, 2)), latency((2,), repeats=1)):
        with pytest.raises(ConfigError, match="expected a torch nn.Module"):
            objective("not a model")


def test_accuracy_rejects_labels_the_model_cannot_predict():
    model = nn.Linear(4, 3)
    X, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 5, 1])
    with pytest.raises(ConfigError, match=r"labels range over 0..5 but the model has 3 outputs"):
        accuracy((X, y))(model)
    with pytest.raises(ConfigError, match=r"labels must lie in 0..2"):
        accuracy((X, torch.tensor([0, 1, -1, 0, 1, 1])))(model)
    with pytest.raises(ShapeError, match=r"logits of shape \(batch, classes\)"):
        accuracy((X, y[:, None]))(model)  # (6, 1) labels for (6, 3) logits
    with pytest.raises(ShapeError, match=r"one row per example; they have \[6, 3\] rows"):
        accuracy((X, y.reshape(3, 2)))  # found when the objective is built


@pytest.mark.parametrize(
    "returned", ["0.5", None, [1.0, 2.0], torch.ones(2), {"loss": 1.0}, np.ones(3)]
)
def test_an_objective_returning_a_non_number_names_the_objective(returned):
    obj = Objective("loss", "minimize", lambda m, a: returned)
    with pytest.raises(ConfigError, match=r"objective 'loss' must be a number, got"):
        obj(None)


def test_an_objective_accepts_numeric_scalars():
    for value in (3, 2.5, np.float32(1.5), np.int64(4), torch.tensor(0.25), torch.tensor([7])):
        assert Objective("x", "minimize", lambda m, a, v=value: v)(None) == float(value)


def test_accuracy_counts_correct_predictions():
    X = torch.eye(4).repeat(25, 1)  # 100 rows, one-hot of class i % 4
    y = torch.arange(4).repeat(25)
    perfect = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        perfect.weight.copy_(torch.eye(4))
    assert accuracy((X, y))(perfect) == 100.0
    shifted = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        shifted.weight.copy_(torch.eye(4).roll(1, 0))  # predicts (i + 1) % 4: always wrong
    assert accuracy((X, y))(shifted) == 0.0
    data = from_arrays(X.numpy(), y.numpy(), val=0.2, test=0.2)
    assert accuracy(data)(perfect) == 100.0  # a Dataset is scored on its val split
    assert accuracy(data.val.loader(batch_size=7))(perfect) == 100.0


def test_objective_contract():
    obj = Objective("err", "minimize", lambda m, a: 0.25)
    assert obj(None) == 0.25 and obj.sign == 1.0
    assert Objective("acc", "maximize").sign == -1.0
    with pytest.raises(
        ConfigError, match=r"direction must be one of \('minimize', 'maximize'\), got 'down'"
    ):
        Objective("x", "down")
    with pytest.raises(ConfigError, match="has no direction"):
        as_objective("loss")
    assert as_objective(("loss", "minimize")).name == "loss"
    with pytest.raises(ConfigError, match="values come from the dict"):
        Objective("loss", "minimize")(None)
    with pytest.raises(ConfigError, match="an arch was given but Linear is not a supernet"):
        params()(nn.Linear(2, 2), arch={"depth": 2})
    with pytest.raises(ConfigError, match="accuracy data must be"):
        accuracy([1, 2, 3])(nn.Linear(2, 2))


def test_token_models_get_token_ids():
    model = nn.Sequential(nn.Embedding(10, 8), nn.Flatten(), nn.Linear(8 * 5, 2))
    assert macs((1, 5))(model) == 8 * 5 * 2
    assert latency((5,), batch=2, repeats=2)(model) > 0


def test_measuring_restores_train_mode_and_leaves_eval_mode_untouched():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    X, y = torch.randn(8, 4), torch.zeros(8, dtype=torch.long)
    accuracy((X, y))(model)
    macs((2, 4))(model)
    assert model.training and model[1].training  # restored
    model.eval()
    calls = []
    model.train = lambda mode=True: calls.append(mode)  # any mode flip would be recorded
    accuracy((X, y))(model)
    macs((2, 4))(model)
    latency((4,), batch=2, repeats=2)(model)
    assert calls == []


# ---- quality objectives on data of any form ------------------------------------------------
class _Fixed(nn.Module):
    """Returns the logits stored for each input row (inputs are row ids)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("table", logits)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.table[rows.long().flatten()]  # (B, C)


def _fixed_case(n: int = 40, classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return _Fixed(logits), torch.arange(n), y, logits


def test_top_k_f1_mse_and_custom_metrics_by_hand():
    from sklearn.metrics import f1_score

    from nasviz.objectives import f1, metric, mse, top_k_accuracy

    model, rows, y, logits = _fixed_case()
    top2 = logits.topk(2, dim=-1).indices
    expected = 100.0 * float((top2 == y[:, None]).any(-1).float().mean())
    objective = top_k_accuracy((rows, y), 2, batch_size=7)
    assert objective.name == "top2_accuracy" and objective(model) == pytest.approx(expected)
    predicted = logits.argmax(-1).numpy()
    for average in ("macro", "micro"):
        score = f1((rows, y), average=average, batch_size=9)(model)
        assert score == pytest.approx(100 * f1_score(y.numpy(), predicted, average=average))
    targets = torch.randn(40, 4)
    assert mse((rows, targets), batch_size=6)(model) == pytest.approx(
        float(((logits - targets) ** 2).mean()), rel=1e-6
    )
    margin = metric(
        lambda out, t: (out.max(-1).values - out.min(-1).values).mean(),
        (rows, y),
        "margin",
        "maximize",
        batch_size=7,
    )
    assert margin(model) == pytest.approx(
        float((logits.max(-1).values - logits.min(-1).values).mean()), rel=1e-6
    )
    with pytest.raises(ConfigError, match="direction must be one of"):
        metric(lambda out, t: 0.0, (rows, y), "m", "up")


def test_class_metrics_refuse_regression_data_when_built_and_when_measured():
    """accuracy, F1 and perplexity of a regression task are errors, never a score of 0."""
    from nasviz.objectives import f1, mse, perplexity

    rows, targets = torch.randn(40, 6), torch.randn(40)
    data = from_arrays(rows.numpy(), targets.numpy(), task="regression", seed=0)
    for build in (accuracy, f1, perplexity):
        with pytest.raises(ConfigError, match=r"this is a regression task .*mse\(data\)"):
            build(data)
    model = nn.Linear(6, 1)
    with pytest.raises(ConfigError, match="this is a regression task"):  # float targets
        accuracy((rows, targets))(model)
    assert mse(data)(model) > 0


def test_accuracy_takes_any_data_form_and_streams():
    import datasets
    from torch.utils.data import DataLoader, IterableDataset, TensorDataset

    model, rows, y, logits = _fixed_case()
    expected = 100.0 * float((logits.argmax(-1) == y).float().mean())

    class Stream(IterableDataset):
        def __iter__(self):
            yield from zip(rows, y, strict=True)

        def __getitem__(self, i):
            raise AssertionError("indexed")

    table = datasets.Dataset.from_dict({"rows": rows.tolist(), "label": y.tolist()})
    forms = [
        (rows, y),
        DataLoader(TensorDataset(rows, y), batch_size=6, num_workers=0),
        Stream(),
        [(rows[:10], y[:10]), (rows[10:], y[10:])],
    ]
    for data in forms:
        assert accuracy(data)(model) == pytest.approx(expected), type(data).__name__
    by_keyword = nn.Module()
    by_keyword.forward = lambda rows: model(rows)  # dict batches call model(**inputs)
    assert accuracy(table)(by_keyword) == pytest.approx(expected)
    assert accuracy((rows, y), device="cpu")(model) == pytest.approx(expected)
    assert objectives_module.evaluate_accuracy(
        model, DataLoader(TensorDataset(rows, y), batch_size=5)
    ) == pytest.approx(expected)


def test_accuracy_of_a_subnet_on_a_loader():
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    net = ElasticMLP(in_features=6, num_classes=3, widths=(8, 16))
    X, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    arch = net.smallest()
    with torch.no_grad(), net.subnet(arch):
        expected = 100.0 * float((net.eval()(X).argmax(-1) == y).float().mean())
    loader = DataLoader(TensorDataset(X, y), batch_size=8)
    assert accuracy(loader)(net, arch) == pytest.approx(expected)
