"""latency() on the runtimes people deploy with; sweeps; devices; bad input."""

from __future__ import annotations

import pytest
import torch
from hardware_helpers import state_hash, tiny_mlp, tiny_transformer
from torch import nn

from nasviz import latency
from nasviz.errors import ConfigError
from nasviz.hardware import RUNTIMES, installed_runtimes, latency_sweep
from nasviz.objectives import measure_latency


def test_onnxruntime_latency_of_a_subnet():
    net = tiny_mlp()
    arch = net.sample(0)
    before = state_hash(net)
    objective = latency((12,), batch=2, repeats=3, warmup=1, threads=1, runtime="onnxruntime")
    assert objective(net, arch) > 0
    m = objective.last
    assert (m.runtime, m.device, m.threads, m.input_shape) == ("onnxruntime", "cpu", 1, (2, 12))
    assert len(m.samples_ms) == 3 and state_hash(net) == before


def test_compile_latency_records_its_runtime():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    before = state_hash(model)
    m = measure_latency(model, (2, 8), repeats=2, warmup=1, threads=1, runtime="compile")
    assert m.median_ms > 0 and m.runtime == "compile" and len(m.samples_ms) == 2
    assert state_hash(model) == before and model.training  # compiled a wrapper, restored mode
    auto = measure_latency(model, (2, 8), repeats=1, warmup=0, device="auto")
    assert auto.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_sweep_measures_every_batch_length_and_runtime():
    net = tiny_transformer()
    arch = net.sample(0)
    frame = latency_sweep(
        net,
        (6,),
        arch=arch,
        batches=[1, 3],
        lengths=[2, 6],
        runtimes=["eager"],
        repeats=2,
        warmup=0,
    )
    assert list(zip(frame.batch, frame.length, strict=True)) == [(1, 2), (1, 6), (3, 2), (3, 6)]
    assert frame.input_shape.tolist() == [(1, 2), (1, 6), (3, 2), (3, 6)]
    assert (frame.median_ms > 0).all() and (frame.runtime == "eager").all()
    assert frame.ms_per_example.tolist() == pytest.approx((frame.median_ms / frame.batch).tolist())
    assert frame.examples_per_s.tolist() == pytest.approx((1e3 / frame.ms_per_example).tolist())


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (
            lambda: latency((4,), runtime="tensorrt"),
            r"runtime must be one of \['eager', 'compile', 'onnxruntime'\], got 'tensorrt'; "
            r"installed here: \['eager', 'compile', 'onnxruntime'\]",
        ),
        (lambda: latency((4,), device="tpu"), "device must be a torch device or one of"),
        (lambda: latency((4,), device="cuda:99"), r"not available here; available: \['cpu'"),
        (lambda: latency_sweep(nn.Linear(4, 2), (4,), batches=[0]), "each of batches must be"),
        (lambda: latency_sweep(nn.Linear(4, 2), (4,), lengths=[2], length_axis=1), "length_axis 1"),
        (lambda: latency_sweep(nn.Linear(4, 2), (4,), runtimes=["eager", "x"]), "runtime must be"),
    ],
)
def test_bad_runtime_arguments(build, needle):
    with pytest.raises(ConfigError, match=needle):
        build()


def test_a_missing_onnxruntime_names_the_extra(monkeypatch):
    from nasviz.export import _deps

    monkeypatch.setattr(_deps, "installed", lambda module: module != "onnxruntime")
    assert installed_runtimes() == ["eager", "compile"] and "onnxruntime" in RUNTIMES
    with pytest.raises(ConfigError, match=r"'onnxruntime', which is not installed.*deploy extra"):
        latency((4,), runtime="onnxruntime")
    with pytest.raises(ConfigError, match=r"installed here: \['eager', 'compile'\]"):
        latency((4,), runtime="ort")


@pytest.mark.gpu
@pytest.mark.parametrize("runtime", ["eager", "compile"])
def test_cuda_latency_synchronizes_every_timed_forward(monkeypatch, runtime):
    """On a GPU each forward is waited for before the clock stops (one sync per call)."""
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 8))
    synced = []
    real = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: (synced.append(d), real(d)))
    m = measure_latency(model, (64, 256), repeats=4, warmup=2, runtime=runtime, device="cuda")
    assert m.device.startswith("cuda") and len(synced) >= 6
    assert next(model.parameters()).device.type == "cpu"  # measured a copy, not the model
