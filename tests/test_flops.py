"""MAC counts of attention: what torch's FLOP counter leaves out on CPU, counted as the math
backend's explicit matrix products count it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nasviz._flops import attention_macs, flop_counter
from nasviz.objectives import count_macs


def _reference(fn, *args) -> int:
    """MACs that torch's plain counter finds with attention on the math backend and torch's
    fused transformer kernels (the inference fast path) turned off: every product explicit."""
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            fn(*args)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    return counter.get_total_flops() // 2


def _counted(fn, *args) -> int:
    with torch.no_grad(), flop_counter() as counter:
        fn(*args)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(
    ("q_shape", "kv_shape"),
    [((2, 4, 12, 16), (2, 4, 12, 16)), ((1, 3, 5, 8), (1, 3, 9, 8)), ((4, 7, 16), (4, 7, 16))],
)
def test_cpu_attention_counts_as_the_math_backend(q_shape, kv_shape):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(s, generator=g) for s in (q_shape, kv_shape, kv_shape))
    expected = _reference(F.scaled_dot_product_attention, q, k, v)
    *lead, heads, q_len, dim = q_shape
    batch = lead[0] if lead else 1
    assert expected == attention_macs(batch, heads, q_len, kv_shape[-2], dim) > 0
    assert _counted(F.scaled_dot_product_attention, q, k, v) == expected
    assert _counted(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)) == expected


def test_attention_macs_by_hand():
    # Q K^T: 2*3 heads, 5x7 scores of width 8; A V: 5x4 outputs summing 7 terms
    assert attention_macs(2, 3, 5, 7, 8, 4) == 2 * 3 * (5 * 7 * 8 + 5 * 4 * 7)


def _layers() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    return {
        "mha": nn.MultiheadAttention(32, 4, batch_first=True),
        "encoder_layer": layer,
        "encoder": nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
    }


@pytest.mark.parametrize("name", ["mha", "encoder_layer", "encoder"])
def test_torch_fused_transformer_kernels_are_counted(name):
    module = _layers()[name].eval()

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # x: (B, T, E) -> (B, T, E)
            return self.inner(x, x, x)[0] if name == "mha" else self.inner(x)

    wrapped = Wrapped().eval()
    x = torch.randn(2, 10, 32)
    expected = _reference(wrapped, x)
    assert expected > 0
    assert _counted(wrapped, x) == expected  # eval + no_grad: the fused fast path ran
    assert count_macs(wrapped, (2, 10, 32)) == expected


def test_padded_sequences_count_only_their_tokens():
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2).eval()  # nests padded batches on the fast path
    x = torch.randn(2, 10, 32)
    padding = torch.zeros(2, 10, dtype=torch.bool)
    padding[0, 6:] = True  # sequences of 6 and 10 tokens
    with pytest.warns(UserWarning, match="nested"):
        nested = _counted(lambda: encoder(x, src_key_padding_mask=padding))
    one = _counted(lambda: encoder(x[1:, :6]))
    assert nested == one + _counted(lambda: encoder(x[1:]))
