"""Prepared weights: eval forwards without autograd reuse one subnet's slices and follow every
change of the weights they were made from."""

from __future__ import annotations

import copy

import pytest
import torch
from supernet_helpers import make_net

from nasviz.prune import Masks
from nasviz.supernet import ElasticMLP
from nasviz.supernet._prepared import PreparedCache


def _shares_storage(view: torch.Tensor, base: torch.Tensor) -> bool:
    return view.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()


def _check(net, arch, x):
    """The supernet's eval output for ``arch`` equals a fresh export's."""
    with torch.no_grad(), net.subnet(arch):
        got = net(x)
    torch.testing.assert_close(got, net.export(arch)(x), atol=1e-5, rtol=1e-5)
    return got


@pytest.mark.parametrize("family", ["mlp", "cnn", "cnn-transform", "transformer", "moe"])
def test_items_are_made_once_and_contiguous(family):
    net, x = make_net(family)
    net.eval()
    arch = net.smallest()
    _check(net, arch, x)
    store = net._prepared_cache.get(arch)
    items = dict(store._items)
    assert items and all(
        t.is_contiguous() for item in items.values() for t in item if t is not None
    )
    _check(net, arch, x)
    assert net._prepared_cache.get(arch) is store and store._items == items  # reused, not remade
    if family == "mlp":  # a slice that is contiguous stays a view of the weights
        (weight, bias) = items[(net.head, arch["width.0"], net.config.num_classes)]
        assert _shares_storage(bias, net.head.bias)  # all of it: a view
        assert not _shares_storage(weight, net.head.weight)  # its first columns: a copy


@pytest.mark.parametrize("family", ["mlp", "cnn", "cnn-transform", "transformer"])
def test_every_change_of_the_weights_is_seen(family):
    net, x = make_net(family)
    net.eval()
    arch, other = net.sample(3), net.sample(4)
    before = _check(net, arch, x)
    _check(net, other, x)
    assert len(net._prepared_cache) == 2
    with torch.no_grad():  # an in-place update, as an optimizer step does
        for p in net.parameters():
            p.mul_(1.1)
    after = _check(net, arch, x)
    assert not torch.allclose(before, after)
    assert len(net._prepared_cache) == 1  # every stale arch was dropped at once
    state = copy.deepcopy(net.state_dict())
    net.load_state_dict(make_net(family)[0].state_dict())
    torch.testing.assert_close(_check(net, arch, x), before, atol=1e-5, rtol=1e-5)
    net.load_state_dict(state)
    torch.testing.assert_close(_check(net, arch, x), after, atol=1e-5, rtol=1e-5)
    net.reorder_channels()  # permutes in place
    _check(net, arch, x)
    net.double()  # new storage
    assert len(net._prepared_cache) == 0
    assert _check(net, arch, x.double() if x.is_floating_point() else x).dtype == torch.float64


def test_parametrized_masks_and_data_edits():
    net, x = make_net("mlp")
    net.eval()
    arch = net.largest()
    _check(net, arch, x)
    masks = Masks({"layers.0.weight": torch.rand(128, 64) > 0.5})
    masks.apply(net)  # the weight becomes computed from the original and the mask
    masked = _check(net, arch, x)
    masks = Masks({"layers.0.weight": torch.rand(128, 64) > 0.5})
    masks.apply(net)  # same parametrization, a new mask copied into it
    assert not torch.allclose(_check(net, arch, x), masked)
    masks.remove(net, permanent=True)
    _check(net, arch, x)
    # edits through .data bypass version counters: clear_prepared() makes them visible
    arch = net.smallest()
    _check(net, arch, x)
    net.head.weight.data[:, :32] *= 2  # a non-contiguous slice: the store holds a copy of it
    net.clear_prepared()
    _check(net, arch, x)


def test_training_slices_per_call_and_gradients_flow():
    torch.manual_seed(0)
    net = ElasticMLP()
    x = torch.randn(8, 64)
    with net.subnet(net.smallest()):
        net.eval()
        net(x).sum().backward()  # autograd on: no prepared store is used or made
    assert len(net._prepared_cache) == 0
    assert net.layers[0].weight.grad[:32].abs().sum() > 0
    assert net.layers[0].weight.grad[32:].abs().sum() == 0


def test_inference_mode_and_no_grad_share_stores():
    net, x = make_net("cnn")
    net.eval()
    arch = net.sample(5)
    with torch.inference_mode(), net.subnet(arch):
        first = net(x)
    with torch.no_grad(), net.subnet(arch):
        torch.testing.assert_close(net(x), first)


def test_cache_is_bounded_and_not_copied():
    net, x = make_net("mlp")
    net.eval()
    for arch in net.sample(0, n=PreparedCache.capacity + 8):
        with torch.no_grad(), net.subnet(arch):
            net(x)
    assert len(net._prepared_cache) <= PreparedCache.capacity
    clone = copy.deepcopy(net)
    assert len(clone._prepared_cache) == 0
    _check(clone, net.smallest(), x)
