"""Elastic layers compute the sliced layer from views of the largest weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from nasviz.supernet import (
    ElasticAttention,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLayerNorm,
    ElasticLinear,
)
from nasviz.supernet._ops import depthwise_matmul


def _shares_storage(view: torch.Tensor, base: torch.Tensor) -> bool:
    return view.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()


@given(st.integers(1, 12), st.integers(1, 10))
def test_linear_uses_first_inputs_and_outputs(i, o):
    torch.manual_seed(0)
    layer = ElasticLinear(12, 10)
    x = torch.randn(3, i)
    expected = x @ layer.weight[:o, :i].T + layer.bias[:o]
    torch.testing.assert_close(layer(x, o), expected)


def test_conv_kernel_is_a_centre_crop_view():
    torch.manual_seed(0)
    conv = ElasticConv2d(6, 8, (3, 5, 7))
    w = conv.active_weight(4, 5, 3)
    assert _shares_storage(w, conv.weight)  # a view, not a copy
    torch.testing.assert_close(w, conv.weight[:5, :4, 2:5, 2:5])
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(conv(x, 5, 3), F.conv2d(x, conv.weight[:5, :4, 2:5, 2:5], padding=1))


def test_kernel_transform_starts_as_crop_and_is_learnable():
    torch.manual_seed(0)
    conv = ElasticConv2d(4, 4, (3, 5, 7), depthwise=True, kernel_transform=True)
    assert set(conv.transforms) == {"7to5", "5to3"}
    torch.testing.assert_close(conv.active_weight(4, 4, 3), conv.weight[:, :, 2:5, 2:5])
    x = torch.randn(2, 4, 8, 8)
    conv(x, kernel_size=3).sum().backward()
    assert conv.transforms["5to3"].grad is not None and conv.transforms["7to5"].grad.abs().sum() > 0


@given(
    st.sampled_from([3, 5, 7]),
    st.sampled_from([1, 2]),
    st.sampled_from([(8, 8), (4, 4), (2, 2), (5, 3)]),
)
def test_depthwise_matmul_equals_conv(k, stride, hw):
    torch.manual_seed(0)
    x = torch.randn(3, 5, *hw)
    w = torch.randn(5, 1, k, k)
    torch.testing.assert_close(
        depthwise_matmul(x, w, stride),
        F.conv2d(x, w, None, stride, k // 2, 1, 5),
        atol=1e-5,
        rtol=1e-5,
    )


def test_batchnorm_slices_statistics_and_updates_them_in_place():
    bn = ElasticBatchNorm2d(8)
    x = torch.randn(16, 5, 4, 4) * 3 + 1
    bn.train()
    bn(x)
    assert not torch.equal(bn.running_mean[:5], torch.zeros(5))  # the slice was updated
    assert torch.equal(bn.running_mean[5:], torch.zeros(3))  # the rest was not
    bn.eval()
    ref = F.batch_norm(
        x, bn.running_mean[:5], bn.running_var[:5], bn.weight[:5], bn.bias[:5], False, 0.0, bn.eps
    )
    torch.testing.assert_close(bn(x), ref)
    stats = (torch.ones(5), torch.full((5,), 4.0))
    torch.testing.assert_close(bn(x, stats), (x - 1) / (4 + bn.eps) ** 0.5)


def test_batchnorm_collect_pass_writes_nothing_shared():
    bn = ElasticBatchNorm2d(8)
    bn.key = "bn"
    before = bn.running_mean.clone()
    collect: dict = {}
    bn(torch.randn(4, 6, 3, 3) + 2, collect=collect)
    assert torch.equal(bn.running_mean, before)
    n, total, squares = collect["bn"]
    assert n == 4 * 9 and total.shape == (6,) and squares.shape == (6,)


def test_layernorm_and_attention_slice():
    torch.manual_seed(0)
    ln = ElasticLayerNorm(8)
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(ln(x), F.layer_norm(x, (5,), ln.weight[:5], ln.bias[:5]))
    attn = ElasticAttention(16, 4, 4).eval()
    x = torch.randn(2, 6, 16)
    for heads in (1, 2, 4):
        torch.testing.assert_close(attn(x, heads), attn.export(heads)(x))


@pytest.mark.parametrize("heads", [1, 3])
def test_attention_head_reordering_keeps_full_output(heads):
    torch.manual_seed(0)
    attn = ElasticAttention(12, 3, 4)
    with torch.no_grad():
        attn.out.weight[:, :4] *= 0.01  # head 0 is the least important
    x = torch.randn(2, 5, 12)
    full = attn(x)
    attn.reorder_heads()
    torch.testing.assert_close(attn(x), full, atol=1e-6, rtol=1e-5)
    scores = attn.out.weight.abs().sum(0).view(3, 4).sum(1)
    assert torch.all(scores[:-1] >= scores[1:])
