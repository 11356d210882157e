"""Expert pruning, task-aware pruning and M-SMoE merging of Hugging Face MoE models built from
configs: router rows sliced, expert count rewritten, saved and reloaded with identical logits;
dropping an expert equals forcing its router logit to -inf before the top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_models import MOE, build, logits, reloaded, state_hash

from nasviz.data import Split
from nasviz.errors import MoEError
from nasviz.hf import adapter_for
from nasviz.moe import (
    RoutingRecorder,
    check_stats,
    compression_report,
    drop_experts,
    merge_experts,
    prune_experts,
)
from nasviz.moe._compress import _permutation
from nasviz.moe._hf_compress import hf_merge
from nasviz.objectives import count_params
from nasviz.prune import Importance
from nasviz.viz import compression_figure, compression_info

_IDS = torch.randint(3, 64, (4, 9), generator=torch.Generator().manual_seed(1))


def _record(model, labels=None):
    with torch.no_grad(), RoutingRecorder(model, labels=labels) as rec:
        model(_IDS)
    return rec.stats()


@pytest.fixture(scope="module", params=list(MOE))
def recorded(request):
    model = build(request.param)
    return request.param, model, _record(model, labels={"task": [0, 1, 0, 1]})


def _most_used(stats, i, usage, k):
    """The ``k`` experts with the highest usage, ties to the higher mean router probability
    (the documented rule), sorted."""
    order = np.lexsort((-stats.recording.layer(i).probs.mean(axis=0), -np.asarray(usage)))
    return np.sort(order[:k])


def _minus_inf_reference(model, drop):
    """``model`` whose routers see -inf logits for experts ``drop[layer index]`` before the
    softmax top-k (the routers' own steps, repeated here from their outputs)."""
    for i, gone in drop.items():
        router = adapter_for(model).experts(i).router
        normalize = getattr(router, "norm_topk_prob", True)  # Mixtral always renormalizes

        def hook(module, args, out, gone=gone, normalize=normalize):
            logits = out[0].clone()
            logits[:, gone] = float("-inf")
            probs = torch.softmax(logits, dim=-1, dtype=torch.float)
            top, index = torch.topk(probs, module.top_k, dim=-1)
            if normalize:
                top = top / top.sum(dim=-1, keepdim=True)
            return out[0], top.to(out[0].dtype), index

        router.register_forward_hook(hook)
    return model


def test_dropping_an_expert_equals_forcing_its_router_logit_to_minus_inf(recorded):
    name, model, _stats = recorded
    before = state_hash(model)
    dropped = drop_experts(model, {"model.layers.0.mlp": [2], "model.layers.1.mlp": [0]})
    assert state_hash(model) == before  # a copy: the original is untouched
    reference = _minus_inf_reference(build(name), {0: [2], 1: [0]})
    torch.testing.assert_close(
        logits(dropped, {"input_ids": _IDS}), logits(reference, {"input_ids": _IDS})
    )
    block = adapter_for(dropped).experts(0)
    hidden, width = block.hidden, block.router.weight.shape[1]  # I, D
    per_expert = 2 * hidden * width + width * hidden + width  # gate_up, down, its router row
    assert count_params(dropped) == count_params(model) - 2 * per_expert  # one per MoE layer
    assert block.num_experts == 3 and block.router.num_experts == 3
    assert block.experts.num_experts == 3
    assert torch.equal(block.router.weight, adapter_for(model).experts(0).router.weight[[0, 1, 3]])


def test_pruned_experts_reload_with_identical_logits_and_generate(recorded):
    name, model, stats = recorded
    pruned = prune_experts(model, stats, keep=3)
    key = "num_local_experts" if name == "mixtral" else "num_experts"
    assert getattr(pruned.config, key) == 3 and getattr(model.config, key) == 4
    again = reloaded(pruned)
    x = {"input_ids": _IDS}
    assert torch.equal(logits(again, x), logits(pruned, x))
    out = again.generate(
        _IDS, attention_mask=torch.ones_like(_IDS), max_new_tokens=3, do_sample=False
    )
    assert out.shape == (4, 12)
    # the most used experts stayed: the least used one of each layer is gone
    for i, name_ in enumerate(stats.layers):
        counts = stats.counts(i, include_dropped=True)
        kept = adapter_for(pruned).experts(i).router.weight
        original = adapter_for(model).experts(i).router.weight
        assert torch.equal(kept, original[_most_used(stats, i, counts, 3)]), name_


def test_pruning_to_fewer_experts_than_top_k_caps_top_k(recorded):
    _name, model, stats = recorded
    one = prune_experts(model, stats, keep=1)
    assert one.config.num_experts_per_tok == 1 and adapter_for(one).experts(1).top_k == 1
    assert torch.equal(logits(reloaded(one), {"input_ids": _IDS}), logits(one, {"input_ids": _IDS}))


def test_task_aware_pruning_keeps_each_tasks_own_experts(recorded):
    _name, model, stats = recorded
    for task in (0, 1):
        pruned = prune_experts(model, stats, keep=2, per_label=("task", task))
        for i in range(2):
            usage = stats.by_label("task", layer=i, normalize=False, include_dropped=True).loc[task]
            top = _most_used(stats, i, usage.to_numpy(), 2)
            original = adapter_for(model).experts(i).router.weight
            assert torch.equal(adapter_for(pruned).experts(i).router.weight, original[top])
    with pytest.raises(MoEError, match="label 'task' has no value 7"):
        prune_experts(model, stats, keep=2, per_label=("task", 7))


def test_merged_experts_reload_and_keep_dominant_router_rows(recorded):
    _name, model, stats = recorded
    merged = merge_experts(model, stats, groups=2)
    assert adapter_for(merged).experts(0).num_experts == 2
    x = {"input_ids": _IDS}
    assert torch.equal(logits(reloaded(merged), x), logits(merged, x))
    for i in range(2):
        counts = stats.counts(i, include_dropped=True)
        dominant = np.argsort(-counts, kind="stable")[:2]
        original = adapter_for(model).experts(i).router.weight
        assert torch.equal(adapter_for(merged).experts(i).router.weight, original[dominant])
    with pytest.raises(MoEError, match="come from another model"):
        merge_experts(merged, stats, groups=1)


def test_merging_aligns_neurons_so_a_permuted_copy_merges_back_to_the_original():
    model = build("mixtral")
    block = adapter_for(model).experts(0)
    hidden = block.hidden
    perm = torch.randperm(hidden, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # expert 3 := expert 1 with its hidden neurons shuffled
        gate_up, down = block.experts.gate_up_proj, block.experts.down_proj
        gate_up[3] = gate_up[1][torch.cat([perm, perm + hidden])]
        down[3] = down[1][:, perm]
    plan = (np.array([1, 0, 2]), np.array([1, 0, 2, 0]), np.array([5.0, 9.0, 1.0, 3.0]))
    merged = hf_merge(model, {block.name: plan, "model.layers.1.mlp": plan}, _permutation)
    new = adapter_for(merged).experts(0)
    torch.testing.assert_close(new.experts.gate_up_proj[0], gate_up[1])  # group 0: experts 1, 3
    torch.testing.assert_close(new.experts.down_proj[0], down[1])
    torch.testing.assert_close(new.experts.gate_up_proj[1], gate_up[0])  # group 1: expert 0 alone
    assert torch.equal(new.router.weight, block.router.weight[[1, 0, 2]])
    unaligned = (6 * gate_up[1] + 4 * gate_up[3]) / 10  # what averaging without alignment gives
    assert not torch.allclose(unaligned, gate_up[1], atol=1e-3)


def test_stats_of_another_model_are_refused(recorded):
    name, model, stats = recorded
    other = build(name, seed=1)  # same shapes, other router weights
    with pytest.raises(
        MoEError, match="come from another model: layer 'model.layers.0.mlp' was recorded"
    ):
        prune_experts(other, stats, keep=2)
    pruned = prune_experts(model, stats, keep=3)
    with pytest.raises(MoEError, match="they cover layers"):
        check_stats(pruned, stats)
    assert check_stats(pruned, _record(pruned))  # its own recording is accepted


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, s: prune_experts(m, "stats", 2), "stats must be the RoutingStats .* got str"),
        (lambda m, s: prune_experts(m, s, keep=2.7), r"keep must be an int, got 2.7 \(float\)"),
        (lambda m, s: prune_experts(m, s, keep=0), "keep=0 for layer .* use 1..4"),
        (
            lambda m, s: prune_experts(m, s, keep={"model.layers.0.mlp": 2}),
            "one expert count for all MoE layers",
        ),
        (lambda m, s: prune_experts(m, s, keep=2, per_label="task"), "per_label must be a"),
        (
            lambda m, s: drop_experts(m, {"model.layers.0.mlp": [0, 1, 2, 3]}),
            "cannot drop all 4 experts",
        ),
        (lambda m, s: drop_experts(m, {"model.layers.0.mlp": [9]}), r"cannot drop \[9\]"),
        (lambda m, s: drop_experts(m, [0]), "drop must map MoE layer name"),
        (lambda m, s: merge_experts(m, s, groups=5), "groups=5 for layer"),
    ],
)
def test_bad_requests_raise_and_change_nothing(recorded, call, message):
    _name, model, stats = recorded
    before = state_hash(model)
    with pytest.raises(MoEError, match=message):
        call(model, stats)
    assert state_hash(model) == before


def test_compression_report_of_hugging_face_variants_goes_on_the_pareto_axes():
    dense, pruned = build("llama"), build("llama")
    Importance.for_data(pruned, _IDS).plan(head_sparsity=0.5, neuron_sparsity=0.5).apply(pruned)
    report = compression_report({"dense": dense, "pruned": pruned}, _IDS)
    assert list(report.columns[:6]) == [
        "name",
        "perplexity",
        "params",
        "latency",
        "memory_bytes",
        "experts",
    ]
    with torch.no_grad():  # one batch of equal lengths: exp of transformers' own mean loss
        expected = [float(torch.exp(m(_IDS, labels=_IDS).loss)) for m in (dense, pruned)]
    np.testing.assert_allclose(report["perplexity"], expected, rtol=1e-5)
    assert report["params"].tolist() == [count_params(dense), count_params(pruned)]
    buffers = sum(b.numel() * b.element_size() for b in dense.buffers())  # rotary frequencies
    assert report["memory_bytes"].tolist() == [
        4 * count_params(m) + buffers for m in (dense, pruned)
    ]
    assert (report["latency"] > 0).all() and report.loc[1, "params_saved_fraction"] > 0.3
    info = compression_info(report)
    assert (info.x, info.y) == ("perplexity", "params")
    fig = compression_figure(report)
    assert [t.name for t in fig.data[-2:]] == ["dense", "pruned"]  # a legend entry per variant


def test_compression_report_of_moe_and_classifier_variants():
    model = build("qwen2_moe")
    pruned = prune_experts(model, _record(model), keep=2)
    report = compression_report({"dense": model, "pruned": pruned}, _IDS)
    assert report["experts"].tolist() == [8, 4]  # 2 MoE layers
    bert = build("bert")
    split = Split(_IDS, torch.tensor([0, 1, 2, 0]))
    table = compression_report({"bert": bert}, split)
    with torch.no_grad():
        expected = 100.0 * float((bert(_IDS).logits.argmax(-1) == split.y).float().mean())
    assert table.loc[0, "accuracy"] == pytest.approx(expected)
