"""Devices and precision. On the CPU here; the CUDA tests carry the ``gpu`` marker (deselected
unless ``--gpu``: ``make test-gpu`` runs them on a machine with a CUDA device)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from training_helpers import blobs, mlp, weights

from nasviz.errors import ConfigError
from nasviz.objectives import accuracy
from nasviz.training import available_devices, resolve_device, resolve_precision, train


def test_device_names_resolve():
    assert "cpu" in available_devices()
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(None, mlp()) == torch.device("cpu")  # where the model is
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else "mps"
        if torch.backends.mps.is_available()
        else "cpu"
    )
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match="device must be None, 'auto'"):
        resolve_device("gpu please")
    assert resolve_precision("bf16", torch.device("cpu")).dtype == torch.bfloat16
    assert resolve_precision("fp32", torch.device("cpu")).scaler() is None


# ---- CUDA ------------------------------------------------------------------------------------
def _one_update(model, device, batch):
    run = train(model, [batch], steps=1, lr=0.1, warmup=0.0, schedule="constant", device=device)
    assert run.run().state == "finished", run.traceback
    return weights(model)


@pytest.mark.gpu
def test_a_cuda_step_equals_a_cpu_step():
    X, y = blobs(64)
    model = mlp()
    on_cpu = _one_update(copy.deepcopy(model), "cpu", (X, y))
    on_cuda = _one_update(copy.deepcopy(model), "cuda", (X, y))
    for k in on_cpu:
        torch.testing.assert_close(on_cuda[k], on_cpu[k], atol=1e-5, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cuda(precision):
    X, y = blobs(256)
    model = mlp(hidden=64)
    dtypes = []
    model[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True, num_workers=2)
    run = train(model, loader, epochs=6, lr=1e-2, device="cuda", precision=precision)
    assert run.run().state == "finished", run.traceback
    assert next(model.parameters()).device.type == "cuda"  # moved once, stays there
    assert run.engine.batches.pin_memory  # batches come from page-locked memory
    assert set(dtypes) == {torch.bfloat16 if precision == "bf16" else torch.float16}
    history = run.history
    assert history["loss"].iloc[-4:].mean() < 0.5 * history["loss"].iloc[:4].mean()
    if precision == "fp16":
        assert run.engine.scaler is not None and run.engine.scaler.get_scale() > 0
    assert accuracy((X, y), device="cuda")(model) > 90.0


@pytest.mark.gpu
def test_supernet_training_on_cuda_matches_the_cpu():
    from nasviz.data import digits
    from nasviz.supernet import ElasticMLP, train_supernet

    data = digits(flat=True).train.subset(128)
    nets = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        nets[device] = ElasticMLP()
        run = train_supernet(nets[device], data, epochs=1, batch_size=64, device=device)
        assert run.run().state == "finished", run.traceback
    cpu, cuda = nets["cpu"].state_dict(), nets["cuda"].state_dict()
    for k in cpu:
        torch.testing.assert_close(cuda[k].cpu(), cpu[k], atol=1e-4, rtol=1e-3)
    run = train_supernet(nets["cuda"], data, epochs=1, batch_size=64, precision="bf16")
    assert run.run().state == "finished", run.traceback
    assert accuracy(data, device="cuda")(nets["cuda"], nets["cuda"].smallest()) >= 0
