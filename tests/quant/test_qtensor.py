"""Per-channel quantization arithmetic, packing and the straight-through fake quantizer."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nasviz.errors import ConfigError
from nasviz.quant import dequantize, fake_quantize, quantize_tensor
from nasviz.quant._qtensor import check_bits, pack, qrange, unpack


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_round_trip_error_is_within_half_a_step(bits, symmetric):
    w = torch.randn(16, 40, generator=torch.Generator().manual_seed(bits)) * torch.linspace(
        0.1, 3, 16
    ).unsqueeze(1)
    q, params = quantize_tensor(w, bits, (1,), symmetric)
    lo, hi = qrange(bits, symmetric)
    assert int(q.min()) >= lo and int(q.max()) <= hi
    assert params.scale.shape == (16, 1)  # one scale per output channel
    error = (dequantize(q, params) - w).abs()
    assert bool((error <= params.scale / 2 + 1e-6).all())  # nothing clipped: half a step at most
    if bits == 8:  # int8: error under 0.4% of each channel's largest magnitude
        assert bool((error.amax(1) <= w.abs().amax(1) / 254 + 1e-6).all())


def test_affine_keeps_zero_exact_and_symmetric_has_no_zero_point():
    w = torch.tensor([[0.0, 0.3, 1.0, 2.5], [-1.0, 0.0, 0.2, 0.1]])
    q, params = quantize_tensor(w, 4, (1,), symmetric=False)
    assert params.zero_point is not None and params.zero_point.dtype == torch.uint8
    assert bool((dequantize(q, params)[w == 0] == 0).all())
    _, sym = quantize_tensor(w, 8, (1,), symmetric=True)
    assert sym.zero_point is None


@given(
    bits=st.sampled_from([2, 3, 4, 8]),
    symmetric=st.booleans(),
    n=st.integers(1, 37),
    seed=st.integers(0, 1000),
)
def test_pack_unpack_round_trip(bits, symmetric, n, seed):
    lo, hi = qrange(bits, symmetric)
    q = torch.randint(lo, hi + 1, (n, 3), generator=torch.Generator().manual_seed(seed))
    packed = pack(q, bits, symmetric)
    per_byte = {2: 4, 3: 2, 4: 2, 8: 1}[bits]
    assert packed.dtype == torch.uint8 and packed.numel() == -(-3 * n // per_byte)
    assert torch.equal(unpack(packed, bits, symmetric, (n, 3)), q.to(torch.int16))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_fake_quantize_rounds_forward_and_passes_gradients_straight_through(bits):
    w = torch.randn(6, 10, generator=torch.Generator().manual_seed(0), requires_grad=True)
    out = fake_quantize(w, bits, (1,), symmetric=bits == 8)
    q, params = quantize_tensor(w, bits, (1,), bits == 8)
    torch.testing.assert_close(out.detach(), dequantize(q, params))  # rounded values
    assert all(len(torch.unique(row)) <= 2**bits for row in out.detach())
    g = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    (out * g).sum().backward()
    torch.testing.assert_close(w.grad, g)  # identity gradient (STE)


def test_half_and_full_precision_fake_quantize():
    w = torch.randn(4, 4, requires_grad=True)
    assert fake_quantize(w, 32, (1,), True) is w
    half = fake_quantize(w, 16, (1,), True)
    assert torch.equal(half.detach(), w.detach().half().float())
    half.sum().backward()
    assert torch.equal(w.grad, torch.ones(4, 4))


@pytest.mark.parametrize("bad", [1, 5, 7, 12, 64, 8.0, "8", True])
def test_unsupported_bit_widths_are_config_errors(bad):
    with pytest.raises(ConfigError, match="bits"):
        check_bits(bad)
