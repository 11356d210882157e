"""Device profiles and latency tables: JSON round trips, sums of parts, bad profiles."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hardware_helpers import tiny_cnn, tiny_mlp, tiny_transformer

from nasviz.errors import CheckpointError, ConfigError, ShapeError, SpaceError
from nasviz.hardware import HardwareProfile, LatencyPredictor, Machine, latency_table
from nasviz.supernet import ElasticMLP


def test_a_profile_records_the_machine(cnn_profile):
    _, profile = cnn_profile
    m = profile.machine
    assert m.torch == torch.__version__ and m.device == "cpu" and m.cpu and m.device_name == m.cpu
    assert 1 <= m.cores <= m.threads or m.cores >= 1
    import onnxruntime

    assert m.onnxruntime == onnxruntime.__version__
    assert (profile.runtime, profile.threads, profile.input_shape) == ("eager", 1, (1, 1, 8, 8))
    assert Machine.current().same_hardware(m)
    assert str(m).count(m.cpu) == 1 and repr(profile).endswith(f"on {m})")  # the CPU once


def test_profiles_round_trip_through_json(cnn_profile, tmp_path):
    net, profile = cnn_profile
    path = profile.save(tmp_path / "cpu.json")
    data = json.loads(path.read_text())  # plain JSON, nothing pickled
    assert data["format"] == "nasviz.hardware-profile/1" and data["family"] == "ElasticCNN"
    loaded = HardwareProfile.load(path)
    assert loaded == profile
    archs = list(net.space)
    np.testing.assert_array_equal(
        loaded.table().predict_many(archs), profile.table().predict_many(archs)
    )


def test_a_prediction_is_the_fixed_part_plus_the_sum_of_the_blocks_the_subnet_runs(cnn_profile):
    net, profile = cnn_profile
    table = profile.table()
    figure = {
        (b.name, tuple(sorted(c.items()))): ms
        for b in profile.blocks
        for c, ms in zip(b.choices, b.ms, strict=True)
    }
    archs = list(net.space)  # every subnet of the tiny space
    expected = [
        profile.fixed_ms
        + sum(figure[(name, tuple(sorted(c.items())))] for name, c in net.block_choices(a))
        for a in archs
    ]
    np.testing.assert_allclose(table.predict_many(archs), expected, rtol=1e-12)
    arch = archs[5]
    parts = table.parts(arch)
    assert parts.block.tolist() == [name for name, _ in net.block_choices(arch)]
    assert table.predict(arch) == pytest.approx(profile.fixed_ms + parts.ms.sum())
    frame = __import__("pandas").DataFrame([dict(a) for a in archs])
    np.testing.assert_array_equal(table.predict_many(frame), table.predict_many(archs))
    with pytest.raises(ConfigError, match="predict takes one arch .* use predict_many"):
        table.predict([arch])
    assert table.predict(frame.iloc[5]) == table.predict(arch)  # a DataFrame row is an arch


def test_the_fixed_part_is_the_median_residual_of_the_sampled_subnets(cnn_profile):
    _, profile = cnn_profile
    archs, measured = zip(*profile.samples, strict=True)
    sums = profile.table().predict_many(list(archs)) - profile.fixed_ms
    assert profile.fixed_ms == pytest.approx(np.median(np.array(measured) - sums))
    assert len(profile.samples) == 6  # smallest, largest and 4 random ones


def test_other_measurements_recompute_the_fixed_part_and_train_the_predictor(cnn_profile):
    """with_samples: subnets measured later (synthetic: 1.5 x sum + 0.2 ms) replace the
    samples; fixed_ms becomes their median residual, the learned predictor fits on them, the
    blocks and the original profile stay as they were."""
    net, profile = cnn_profile
    table = profile.table()
    archs = net.space.sample(3, n=10)
    sums = table.predict_many(archs) - profile.fixed_ms
    measured = 1.5 * sums + 0.2
    later = profile.with_samples(list(zip(archs, measured.tolist(), strict=True)))
    assert later.fixed_ms == pytest.approx(np.median(measured - sums))
    assert later.fixed_ms != pytest.approx(profile.fixed_ms)
    assert [a for a, _ in later.samples] == [dict(a) for a in archs]
    assert later.blocks == profile.blocks and len(profile.samples) == 6
    assert later.table().predict(archs[0]) == pytest.approx(later.fixed_ms + sums[0])
    learned = LatencyPredictor.for_profile(later).predict_many(archs)
    np.testing.assert_allclose(learned, measured, rtol=0.02)
    for bad, error, needle in [
        ([], ConfigError, "at least one"),
        ([(archs[0], 0.0)], ConfigError, "positive finite"),
        ([(archs[0], float("nan"))], ConfigError, "positive finite"),
        ([({**dict(archs[0]), "depth.0": 99}, 1.0)], SpaceError, "depth.0"),
    ]:
        with pytest.raises(error, match=needle):
            profile.with_samples(bad)


def test_a_table_missing_a_block_choice_is_refused(cnn_profile):
    _, profile = cnn_profile
    data = profile.to_dict()
    data["blocks"][1]["ms"] = data["blocks"][1]["ms"][:-1]
    with pytest.raises(
        ConfigError, match=r"no figure for block 'stage0\.0' choice\(s\) \[\{'kernel': 5"
    ):
        HardwareProfile.from_dict(data).table()
    data = profile.to_dict()
    data["blocks"][2]["ms"][0] = float("nan")
    with pytest.raises(
        ConfigError, match=r"no figure for block 'stage0\.1' choice\(s\) \[\{'kernel': 3"
    ):
        HardwareProfile.from_dict(data).table()
    data = profile.to_dict()
    data["blocks"][1]["cases"] = data["blocks"][1]["cases"][1:]
    with pytest.raises(ConfigError, match="does not say which choice"):
        HardwareProfile.from_dict(data).table()


def test_a_profile_of_another_supernet_or_space_is_refused(cnn_profile):
    net, profile = cnn_profile
    objective = latency_table(profile)
    assert objective.cheap and objective.unit == "ms"
    assert objective(net, net.sample(0)) == pytest.approx(profile.table().predict(net.sample(0)))
    mlp = tiny_mlp()
    with pytest.raises(ConfigError, match="measured for a ElasticCNN, not for a ElasticMLP"):
        objective(mlp, mlp.sample(0))
    wider = type(net)(
        1, 3, 8, stem_channels=4, stage_channels=(4, 8), strides=(2, 1), kernels=(3, 5),
        expands=(1, 2), depths=(1, 2),
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"another config \(differs in \['stage_channels'\]"):
        objective(wider, wider.sample(0))
    other_space = dataclasses.replace(profile, space={**profile.space, "depth.0": [1]})
    with pytest.raises(ConfigError, match="another search space"):
        other_space.check(net)  # (a converted supernet's space need not follow its config)
    with pytest.raises(SpaceError, match=r"dimension 'kernel\.0' allows \[3, 5\], got 7"):
        objective(None, {**net.sample(0), "kernel.0": 7})
    with pytest.raises(ConfigError, match="needs an arch"):
        objective(net)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(format="other/1"),
        lambda d: d.pop("blocks"),
        lambda d: d["blocks"][0].update(ms="fast"),
        lambda d: d.update(machine={"cpu": "x"}),
    ],
)
def test_malformed_profile_files_are_checkpoint_errors(cnn_profile, tmp_path, edit):
    _, profile = cnn_profile
    data = profile.to_dict()
    edit(data)
    (tmp_path / "p.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError):
        HardwareProfile.load(tmp_path / "p.json")
    (tmp_path / "q.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is not JSON"):
        HardwareProfile.load(tmp_path / "q.json")


def test_the_learned_predictor_learns_what_the_table_misses(cnn_profile):
    """Subnets whose (synthetic) measured latency is 2 x table sum + 0.3 ms: the table is far
    off, the predictor fitted on 12 of them predicts the others closely."""
    net, profile = cnn_profile
    table = profile.table()
    archs = list(net.space)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(archs))
    train, test = [archs[i] for i in order[:12]], [archs[i] for i in order[12:]]
    truth = lambda a: 2 * (table.predict_many(a) - profile.fixed_ms) + 0.3  # noqa: E731
    synthetic = dataclasses.replace(
        profile,
        samples=tuple((dict(a), float(m)) for a, m in zip(train, truth(train), strict=True)),
    )
    learned = latency_table(synthetic, method="learned")
    predicted = np.array([learned(net, a) for a in test])
    error = np.abs(predicted - truth(test)) / truth(test)
    table_error = np.abs(table.predict_many(test) - truth(test)) / truth(test)
    assert error.mean() < 0.02 and table_error.mean() > 0.2
    with pytest.raises(ConfigError, match=">= 3 archs"):
        LatencyPredictor(table).fit(train[:2], [1.0, 2.0])


def test_profiles_of_the_other_families_and_of_onnxruntime():
    mlp = ElasticMLP(12, 3, widths=(4,), depths=(1,))  # one subnet: three ONNX exports
    profile = HardwareProfile.measure(
        mlp, (2, 12), runtime="onnxruntime", repeats=2, warmup=1, rounds=1, samples=0
    )
    assert profile.runtime == "onnxruntime" and len(profile.samples) == 1
    assert [b.name for b in profile.blocks] == ["layer0", "head"]
    assert all(ms > 0 for b in profile.blocks for ms in b.ms)
    net = tiny_transformer(moe=True)
    profile = HardwareProfile.measure(net, (1, 6), repeats=1, warmup=0, rounds=1, samples=0)
    assert sum(len(b.choices) for b in profile.blocks) == 1 + 2 * 16 + 1
    table = profile.table()
    for arch in net.sample(0, n=5):
        parts = table.parts(arch)
        assert parts.block.tolist() == [name for name, _ in net.block_choices(arch)]
        assert table.predict(arch) == pytest.approx(profile.fixed_ms + parts.ms.sum())


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"runtime": "tvm"}, ConfigError, "runtime must be one of"),
        ({"threads": 0}, ConfigError, "threads must be an int >= 1"),
        ({"samples": -1}, ConfigError, "samples must be an int >= 0"),
        ({"input_shape": (1, 3, 8, 8)}, ShapeError, "ElasticCNN expects images"),
    ],
)
def test_bad_measure_arguments(kwargs, error, needle):
    args = {"input_shape": (1, 1, 8, 8), **kwargs}
    with pytest.raises(error, match=needle):
        HardwareProfile.measure(tiny_cnn(), **args)


def test_each_visit_is_normalized_by_the_machine_speed_at_that_moment(monkeypatch):
    """A machine that runs every other visit at half speed: raw timings differ by 2x, while
    normalized ones are all at the session's median speed (the reference kernel, timed with
    each visit, says how fast the machine was)."""
    from nasviz import objectives
    from nasviz.hardware import _interleave, _reference

    state = {"t": 0.0, "calls": 0}

    def visit_ms(visit: int) -> float:  # slow (2 ms a call) on every other visit
        return 2.0 if visit % 2 else 1.0

    def clock() -> float:  # 3 timed forwards a visit: 6 readings
        state["t"] += visit_ms(state["calls"] // 6) / 1e3
        state["calls"] += 1
        return state["t"]

    def kernel(device, clock):
        return lambda: visit_ms(state["calls"] // 6)  # the speed of the visit about to run

    monkeypatch.setattr(objectives, "_clock", clock)
    monkeypatch.setattr(_reference, "reference_kernel", kernel)
    net = tiny_mlp()
    entries = [(a, net.export(a), (2, 12)) for a in (net.smallest(), net.largest())]
    args = {"runtime": "eager", "device": torch.device("cpu"), "threads": 1, "warmup": 1}
    measured = _interleave.measure_interleaved(entries, repeats=3, rounds=4, normalize=True, **args)
    assert measured.reference_ms == 1.5  # median over visits at 1 and 2 ms
    for times in measured.times.values():
        np.testing.assert_allclose(times, 1.5)
    raw = _interleave.measure_interleaved(entries, repeats=3, rounds=4, **args)
    assert raw.reference_ms is None
    raw_ms = np.concatenate(list(raw.times.values()))
    np.testing.assert_allclose(sorted({round(float(t), 9) for t in raw_ms}), [1.0, 2.0])


def test_a_profile_records_its_reference_and_rescales_to_the_machine_now(cnn_profile, tmp_path):
    net, profile = cnn_profile
    assert profile.reference_ms > 0
    archs = list(net.space)
    twice = profile.rescaled(2 * profile.reference_ms)  # a machine now twice as slow
    np.testing.assert_allclose(
        twice.table().predict_many(archs), 2 * profile.table().predict_many(archs), rtol=1e-12
    )
    assert twice.fixed_ms == pytest.approx(2 * profile.fixed_ms)
    assert [m for _, m in twice.samples] == pytest.approx([2 * m for _, m in profile.samples])
    assert HardwareProfile.load(twice.save(tmp_path / "twice.json")) == twice
    now = profile.rescaled()  # times the reference kernel here and now
    assert now.reference_ms > 0 and now.blocks[0].ms[0] == pytest.approx(
        profile.blocks[0].ms[0] * now.reference_ms / profile.reference_ms
    )
    raw = HardwareProfile.measure(
        tiny_mlp(), (2, 12), repeats=1, warmup=0, samples=0, normalize=False
    )
    assert raw.reference_ms is None
    with pytest.raises(ConfigError, match="no reference time"):
        raw.rescaled()
    elsewhere = dataclasses.replace(
        profile, machine=dataclasses.replace(profile.machine, cpu="Other CPU 9000")
    )
    with pytest.raises(ConfigError, match="rescaling moves a profile to its own machine"):
        elsewhere.rescaled()
    with pytest.raises(ConfigError, match="positive time"):
        profile.rescaled(0)


def test_a_profile_written_before_reference_times_still_loads(cnn_profile, tmp_path):
    _, profile = cnn_profile
    data = profile.to_dict()
    del data["reference_ms"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    loaded = HardwareProfile.load(tmp_path / "old.json")
    assert loaded.reference_ms is None and loaded.blocks == profile.blocks
