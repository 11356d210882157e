"""Every exported subnet deploys: torch.export and ONNX Runtime give torch's outputs."""

from __future__ import annotations

import pytest
import torch
from hardware_helpers import state_hash, tiny_cnn, tiny_mlp, tiny_transformer
from torch import nn

from nasviz.errors import ConfigError, RunError, ShapeError
from nasviz.export import onnx, program

FAMILIES = {
    "mlp": (tiny_mlp, lambda g: torch.randn(2, 12, generator=g)),
    "cnn": (tiny_cnn, lambda g: torch.randn(2, 1, 8, 8, generator=g)),
    "transformer": (tiny_transformer, lambda g: torch.randint(0, 16, (2, 6), generator=g)),
    "moe": (
        lambda: tiny_transformer(moe=True),
        lambda g: torch.randint(0, 16, (2, 6), generator=g),
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_torch_export_of_random_archs_computes_the_export(family):
    build, draw = FAMILIES[family]
    net = build()
    for arch in net.sample(0, n=2):
        static = net.export(arch)
        ep = program(static, draw(torch.Generator().manual_seed(0)))
        x = draw(torch.Generator().manual_seed(1))
        with torch.no_grad():
            torch.testing.assert_close(ep.module()(x), static(x))


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("family", ["mlp", "cnn", "transformer"])
def test_onnxruntime_outputs_equal_torch(family, tmp_path):
    build, draw = FAMILIES[family]
    net = build()
    static = net.export(net.sample(3))
    path = onnx(static, draw(torch.Generator().manual_seed(0)), tmp_path / "m.onnx")
    session = _session(path)
    for seed in (1, 2):
        x = draw(torch.Generator().manual_seed(seed))
        (out,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(out), static(x), rtol=1e-4, atol=1e-5)


def test_onnxruntime_moe_subnet_is_right_for_tokens_routed_to_experts_the_example_never_used(
    tmp_path,
):
    """Single-token inputs: the example token reaches top_k experts per layer; every other
    token id must come out right too, and some of them reach other experts."""
    net = tiny_transformer(moe=True)
    arch = net.largest().replace(**{"layers": 1, "top_k.0": 1})  # one MoE layer of 3 experts
    static = net.export(arch)
    layers = [m for m in static.modules() if type(m).__name__ == "MoE"]
    routed: list[set] = []
    hooks = [
        m.register_routing_hook(lambda m, r: routed.append(set(r.experts.tolist()[0])))
        for m in layers
    ]
    example = torch.tensor([[0]])
    with torch.no_grad():
        static(example)
    used = [set(s) for s in routed]  # per layer, the example's experts
    session = _session(onnx(static, example, tmp_path / "moe.onnx"))
    elsewhere = 0
    for token in range(16):
        x = torch.tensor([[token]])
        routed.clear()
        with torch.no_grad():
            expected = static(x)
        elsewhere += any(r - u for r, u in zip(routed, used, strict=True))
        (out,) = session.run(None, {"input": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-4, atol=1e-5)
    for hook in hooks:
        hook.remove()
    assert elsewhere > 0  # the check covered experts the example did not use


class _DataDependent(nn.Module):
    """A forward torch.export cannot trace (a Python branch on a tensor's value)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 4) -> (B, 4)
        y = self.linear(x)
        return y if float(y.sum()) > 0 else -y


def test_exporting_leaves_the_model_as_it_was_also_when_it_fails(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    before = state_hash(model)
    onnx(model, torch.randn(3, 4), tmp_path / "ok.onnx")
    assert state_hash(model) == before and model.training  # mode restored, nothing changed
    with pytest.raises(ShapeError, match=r"inputs of shape \(3, 5\) failed"):
        onnx(model, torch.randn(3, 5), tmp_path / "bad.onnx")
    assert state_hash(model) == before and model.training
    assert not (tmp_path / "bad.onnx").exists()
    odd = _DataDependent()
    before = state_hash(odd)
    with pytest.raises(RunError, match="torch.export could not export _DataDependent"):
        onnx(odd, torch.randn(2, 4), tmp_path / "odd.onnx")
    assert state_hash(odd) == before and odd.training


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda p: onnx(nn.Linear(2, 2), "x", p / "a.onnx"), "example_input must be a tensor"),
        (lambda p: onnx(nn.Linear(2, 2), torch.ones(1, 2), p / "no" / "a.onnx"), "does not exist"),
        (lambda p: onnx(nn.Linear(2, 2), torch.ones(1, 2), p / "a.onnx", opset=2), "opset"),
        (lambda p: onnx("model", torch.ones(1, 2), p / "a.onnx"), "expected a torch nn.Module"),
    ],
)
def test_bad_export_arguments(call, needle, tmp_path):
    with pytest.raises(ConfigError, match=needle):
        call(tmp_path)


def test_a_missing_onnx_package_names_the_extra(monkeypatch, tmp_path):
    from nasviz.export import _deps

    monkeypatch.setattr(_deps, "installed", lambda module: module != "onnxscript")
    with pytest.raises(
        ConfigError, match=r"'onnxscript', which is not installed.*nasviz\[deploy\]"
    ):
        onnx(nn.Linear(2, 2), torch.ones(1, 2), tmp_path / "a.onnx")


@pytest.mark.parametrize(
    ("family", "dynamic", "sizes"),
    [
        ("mlp", "batch", [(1, 12), (5, 12)]),
        ("cnn", "batch", [(1, 1, 8, 8), (7, 1, 8, 8)]),
        ("transformer", ("batch", "sequence"), [(1, 3), (5, 6)]),
        ("moe", ("batch", "sequence"), [(1, 2), (4, 6)]),
    ],
)
def test_dynamic_batch_and_sequence_run_at_other_sizes(family, dynamic, sizes, tmp_path):
    build, draw = FAMILIES[family]
    net = build()
    static = net.export(net.largest())
    example = draw(torch.Generator().manual_seed(0))
    ep = program(static, example, dynamic=dynamic)
    session = _session(onnx(static, example, tmp_path / "d.onnx", dynamic=dynamic))
    for i, shape in enumerate(sizes):
        g = torch.Generator().manual_seed(10 + i)
        x = (
            torch.randint(0, 16, shape, generator=g)
            if family in ("transformer", "moe")
            else (torch.randn(shape, generator=g))
        )
        with torch.no_grad():
            expected = static(x)
            torch.testing.assert_close(ep.module()(x), expected)
        (out,) = session.run(None, {"input": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-4, atol=1e-5)


def test_dynamic_dimensions_are_checked():
    static = tiny_mlp().export(tiny_mlp().largest())
    with pytest.raises(
        ConfigError, match=r"dynamic must name dimensions among \['batch', 'sequence'\]"
    ):
        program(static, torch.randn(2, 12), dynamic="time")
    with pytest.raises(ConfigError, match=r"size is at least 2 \(got shape \(1, 12\)"):
        program(static, torch.randn(1, 12), dynamic="batch")
    with pytest.raises(ConfigError, match=r"has no dimension 1"):
        program(nn.Linear(2, 2), torch.randn(3), dynamic=("batch", "sequence"))
    with pytest.raises(RunError, match=r"fixes a dimension that dynamic='sequence' lets vary"):
        program(static, torch.randn(2, 12), dynamic="sequence")  # an MLP: no sequence


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 16])
def test_a_weight_only_quantized_model_runs_in_onnxruntime_as_in_torch(bits, tmp_path):
    """Its packed codes are unpacked in the graph (a bit mask ONNX Runtime accepts)."""
    from nasviz.quant import quantize

    net = tiny_mlp()
    quantized = quantize(net.export(net.largest()), bits)
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(0))
    session = _session(onnx(quantized, x, tmp_path / "q.onnx", dynamic="batch"))
    for seed in (1, 2):
        x = torch.randn(5, 12, generator=torch.Generator().manual_seed(seed))
        (out,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(out), quantized(x), rtol=1e-4, atol=1e-5)


def test_a_model_on_torch_ao_int8_kernels_is_refused_with_what_exports_instead(tmp_path):
    from nasviz.quant import quantize

    net = tiny_mlp()
    dynamic = quantize(net.export(net.largest()), mode="dynamic")
    with pytest.raises(ConfigError, match="torch.ao's int8 kernels.*weight-only"):
        onnx(dynamic, torch.randn(2, 12), tmp_path / "d.onnx")
    assert not (tmp_path / "d.onnx").exists()
