"""The MoE layer under every deployment path: right for every input, not only the example's.

Before the fix, ``torch.export`` and the dynamo ONNX exporter failed on a Python loop over
``torch.unique(...).tolist()``, and ``torch.jit.trace`` / the legacy ONNX exporter kept only the
experts the example input used. Each path is checked on inputs that route to experts the
example input did not use.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from nasviz.moe import MoE, RoutingRecorder

DIM = 8


def _layer(capacity_factor=None, merged=False) -> MoE:
    torch.manual_seed(0)
    moe = MoE(DIM, 16, 4, top_k=2, capacity_factor=capacity_factor).eval()
    if merged:  # four router slots, two expert modules
        moe.experts = torch.nn.ModuleList([moe.experts[0], moe.experts[1]])
        moe.expert_map = torch.tensor([0, 1, 1, 0])
    return moe


def _inputs(moe: MoE) -> tuple[torch.Tensor, torch.Tensor]:
    """An example whose tokens all go to slots 0 and 1, and a same-shaped input that also
    reaches slots 2 and 3 (checked through the layer's own routing)."""
    direction = moe.router.weight[0] + moe.router.weight[1] - moe.router.weight[2:].sum(0)
    example = (direction / direction.norm() * 6).repeat(2, 3, 1) + 0.01 * torch.randn(2, 3, DIM)
    other = torch.randn(2, 3, DIM, generator=torch.Generator().manual_seed(1)) * 3
    used = []
    hook = moe.register_routing_hook(lambda m, r: used.append(set(r.experts.flatten().tolist())))
    with torch.no_grad():
        moe(example)
        moe(other)
    hook.remove()
    assert used[0] <= {0, 1} and used[1] - used[0], used  # other reaches unused experts
    return example, other


CASES = {"plain": {}, "capacity": {"capacity_factor": 0.7}, "merged": {"merged": True}}


def _run_onnx(path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


@pytest.mark.parametrize("case", list(CASES))
def test_torch_export_keeps_every_expert(case):
    moe = _layer(**CASES[case])
    example, other = _inputs(moe)
    with torch.no_grad():
        program = torch.export.export(moe, (example,))
        torch.testing.assert_close(program.module()(other), moe(other))
        torch.testing.assert_close(program.module()(example), moe(example))


@pytest.mark.parametrize("case", ["plain", "merged"])
def test_jit_trace_keeps_every_expert(case):
    moe = _layer(**CASES[case])
    example, other = _inputs(moe)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(moe, (example,))
        torch.testing.assert_close(traced(other), moe(other))


def test_dynamo_onnx_export_keeps_every_expert(tmp_path):
    from nasviz.export import onnx

    moe = _layer()
    example, other = _inputs(moe)
    path = onnx(moe, example, tmp_path / "moe.onnx")
    with torch.no_grad():
        torch.testing.assert_close(_run_onnx(path, other), moe(other), rtol=1e-5, atol=1e-5)


def test_legacy_onnx_export_keeps_every_expert(tmp_path):
    moe = _layer()
    example, other = _inputs(moe)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(moe, (example,), tmp_path / "legacy.onnx", dynamo=False)
        out = _run_onnx(tmp_path / "legacy.onnx", other)
        torch.testing.assert_close(out, moe(other), rtol=1e-5, atol=1e-5)


def test_recording_a_graph_leaves_aux_loss_and_observers_alone():
    moe = _layer()
    example, other = _inputs(moe)
    moe(other)  # eager: sets this thread's aux loss
    aux = moe.aux_loss
    calls = []
    moe.register_routing_hook(lambda m, r: calls.append(r))
    torch.export.export(moe, (example,))
    assert calls == [] and moe.aux_loss is aux  # nothing symbolic leaked into the layer
    assert np.isfinite(float(moe.aux_loss.detach()))
    with torch.no_grad(), RoutingRecorder(moe) as rec:
        moe(other)
    assert rec.stats().counts(0).sum() == other.shape[0] * other.shape[1] * moe.top_k
    assert np.isfinite(float(moe.aux_loss.detach()))
