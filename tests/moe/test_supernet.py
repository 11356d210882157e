"""Recording and compressing the MoE FFNs of nasviz's ElasticTransformer supernet."""

from __future__ import annotations

import numpy as np
import torch

from nasviz.moe import MoE, RoutingRecorder, prune_experts, train_moe


def test_records_the_active_subnet_without_changing_outputs(moe_supernet):
    net, dataset = moe_supernet
    X = dataset.test.X
    arch = {
        "layers": 2,
        "heads.0": 1,
        "heads.1": 2,
        "ffn.0": 8,
        "ffn.1": 16,
        "experts.0": 2,
        "experts.1": 4,
        "top_k.0": 1,
        "top_k.1": 2,
    }
    with net.subnet(arch), torch.no_grad():
        before = net(X)
        with RoutingRecorder(net, labels={"task": dataset.test.extras["task"]}) as rec:
            during = net(X)
    assert torch.equal(before, during)
    stats = rec.stats()
    assert stats.layers == ["blocks.0.moe", "blocks.1.moe"]
    first, second = stats.recording.layers
    assert (
        first.experts.shape[1] == first.top_k == 1 and (first.experts < 2).all()
    )  # 2 experts kept, top-1
    assert second.experts.shape[1] == 2
    assert first.probs.shape[1] == 4 and (first.probs[:, 2:] == 0).all()
    assert stats.counts(0).sum() == len(X) * 8 and stats.counts(1).sum() == len(X) * 8 * 2
    assert np.array_equal(first.token, X.reshape(-1).numpy())


def test_exported_subnet_experts_can_be_pruned(moe_supernet):
    net, dataset = moe_supernet
    arch = net.space.largest()
    static = net.export(arch).eval()
    X = dataset.test.X
    with torch.no_grad(), RoutingRecorder(static) as rec:
        static(X)
    pruned = prune_experts(static, rec.stats(), keep=3)
    assert [m.num_experts for m in pruned.modules() if isinstance(m, MoE)] == [3, 3]
    assert pruned(X).shape == (len(X), 2)


def test_train_moe_uses_the_supernets_aux_loss_method(moe_supernet):
    net, dataset = moe_supernet
    history = train_moe(net, dataset, epochs=1, batch_size=32)
    assert history.aux_loss.iloc[0] > 0
