"""Expert pruning and merging from routing statistics."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from nasviz.errors import MoEError
from nasviz.moe import (
    MoE,
    RoutingRecorder,
    compression_report,
    drop_experts,
    merge_experts,
    prune_experts,
)
from nasviz.objectives import Objective, accuracy, evaluate_accuracy, macs, params


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    now = model.state_dict()
    return now.keys() == state.keys() and all(torch.equal(now[k], v) for k, v in state.items())


def test_prune_keeps_most_used_and_leaves_input_unchanged(recorded):
    model, stats = recorded
    state = _state(model)
    pruned = prune_experts(model, stats, keep=2)
    assert _same(model, state)
    for i, layer in enumerate(m for m in pruned.modules() if isinstance(m, MoE)):
        assert (
            layer.num_experts == 2 and len(layer.experts) == 2 and layer.router.weight.shape[0] == 2
        )
        original = model.moes[i]
        top = np.sort(np.argsort(-stats.counts(i), kind="stable")[:2])
        assert torch.equal(layer.router.weight, original.router.weight[torch.as_tensor(top)])
        assert torch.equal(layer.experts[0].fc1.weight, original.experts[int(top[0])].fc1.weight)


def test_dropping_never_chosen_experts_keeps_outputs(tiny_tasks):
    """Gates are renormalized top-k probabilities, so removing experts that no token chose
    changes nothing on the recorded data."""
    torch.manual_seed(0)
    moe = MoE(4, 8, 5, 2)
    with torch.no_grad():
        moe.router.weight.abs_()
        moe.router.weight[3:] *= -1  # positive inputs: experts 3 and 4 never win
    x = torch.randn(30, 4).abs()
    with torch.no_grad(), RoutingRecorder(moe) as rec:
        before = moe(x)
    unused = [e for e in range(5) if rec.stats().counts(0)[e] == 0]
    assert unused
    pruned = prune_experts(moe, rec.stats(), keep=5 - len(unused))
    assert pruned is not moe and pruned.num_experts == 5 - len(unused)
    torch.testing.assert_close(pruned(x), before)


def test_per_label_pruning_ranks_by_that_labels_tokens(recorded):
    model, stats = recorded
    pruned = prune_experts(model, stats, keep=1, per_label=("task", 2))
    for i, layer in enumerate(m for m in pruned.modules() if isinstance(m, MoE)):
        favourite = int(stats.by_label("task", layer=i, normalize=False).loc[2].to_numpy().argmax())
        assert torch.equal(layer.router.weight[0], model.moes[i].router.weight[favourite])
        assert layer.top_k == 1
    with pytest.raises(MoEError, match="no value"):
        prune_experts(model, stats, keep=1, per_label=("task", 99))


@pytest.mark.parametrize("keep", [0, 5, -1, {"moes.0": 9}, {"nope": 1}])
def test_bad_keep_is_moe_error_and_model_unchanged(recorded, keep):
    model, stats = recorded
    state = _state(model)
    with pytest.raises(MoEError):
        prune_experts(model, stats, keep=keep)
    with pytest.raises(MoEError):
        merge_experts(model, stats, groups=keep)
    assert _same(model, state)


def test_model_without_moe_is_moe_error(recorded):
    _, stats = recorded
    with pytest.raises(
        MoEError,
        match="no MoE layers to compress: .*nasviz.moe.MoE layers and on Hugging Face MoE models",
    ):
        prune_experts(nn.Linear(2, 2), stats, keep=1)


def test_drop_experts_validates():
    moe = MoE(4, 8, 3, 1)
    with pytest.raises(MoEError):
        drop_experts(moe, {"MoE": [0, 1, 2]})
    with pytest.raises(MoEError):
        drop_experts(moe, {"MoE": [3]})
    assert drop_experts(moe, {"MoE": [1]}).num_experts == 2


def test_merge_keeps_routing_and_reduces_experts(recorded, tiny_tasks):
    model, stats = recorded
    state = _state(model)
    merged = merge_experts(model, stats, groups=2)
    assert _same(model, state)
    X = tiny_tasks.test.X
    with torch.no_grad(), RoutingRecorder(merged) as rec:
        merged(X)
    for i, layer in enumerate(m for m in merged.modules() if isinstance(m, MoE)):
        assert len(layer.experts) == 2 and layer.num_experts == 4
        assert layer.expert_map.tolist().count(0) >= 1 and set(layer.expert_map.tolist()) == {0, 1}
        dominant = np.argsort(-stats.counts(i), kind="stable")[:2]
        assert layer.expert_map[torch.as_tensor(dominant)].tolist() == [0, 1]
    # the router is untouched: the first layer sees the same inputs, so it routes identically
    assert np.array_equal(rec.recording().layers[0].experts, stats.recording.layers[0].experts)
    assert sum(p.numel() for p in merged.parameters()) < sum(p.numel() for p in model.parameters())


def test_merge_with_all_groups_is_identity(recorded, tiny_tasks):
    model, stats = recorded
    merged = merge_experts(model, stats, groups=4)
    with torch.no_grad():
        assert torch.equal(merged(tiny_tasks.test.X), model(tiny_tasks.test.X))


def test_merge_aligns_permuted_neurons():
    """A member that is a hidden-neuron permutation of its dominant merges back to the dominant."""
    torch.manual_seed(0)
    moe = MoE(4, 6, 2, 1)
    perm = torch.randperm(6)
    with torch.no_grad():
        src, dst = moe.experts[0], moe.experts[1]
        dst.fc1.weight.copy_(src.fc1.weight[perm])
        dst.fc1.bias.copy_(src.fc1.bias[perm])
        dst.fc2.weight.copy_(src.fc2.weight[:, perm])
        dst.fc2.bias.copy_(src.fc2.bias)
        moe.router.weight[0] = moe.router.weight[1] + 0.1  # expert 0 is the more used one
    x = torch.randn(50, 4)
    with torch.no_grad(), RoutingRecorder(moe) as rec:
        before = moe(x)
    assert rec.stats().counts(0)[0] > rec.stats().counts(0)[1]
    merged = merge_experts(moe, rec.stats(), groups=1)
    torch.testing.assert_close(merged.experts[0].fc1.weight, src.fc1.weight)
    torch.testing.assert_close(merged(x), before)


def test_compression_report_carries_the_search_objectives(recorded, tiny_tasks):
    model, stats = recorded
    variants = {
        "original": model,
        "pruned": prune_experts(model, stats, keep=2),
        "merged": merge_experts(model, stats, groups=2),
        "top-1": prune_experts(model, stats, keep=1),
    }
    report = compression_report(variants, tiny_tasks)
    objectives = [accuracy(tiny_tasks), params(), macs((1, 8))]
    for o in objectives:  # the same measurement a Search makes, under the same names
        assert report[o.name].tolist() == [o(m) for m in variants.values()]
    table = report.set_index("name")
    assert table.loc["original", "accuracy_change"] == 0
    assert table.loc["pruned", "accuracy_change"] == pytest.approx(
        table.loc["pruned", "accuracy"] - table.loc["original", "accuracy"]
    )
    assert (table.loc[["pruned", "merged"], "params_saved_fraction"] > 0).all()
    assert table.loc["merged", "macs"] == table.loc["original", "macs"]  # merging saves memory
    assert table.loc["top-1", "macs_saved_fraction"] > 0  # one expert per token: fewer MACs
    assert (table.memory_bytes >= table.params * 4).all()
    assert table.experts.tolist() == [8, 4, 4, 2]
    with pytest.raises(MoEError):
        compression_report({"a": model}, tiny_tasks.test, baseline="b")


def test_compression_report_per_task_accuracy(recorded, tiny_tasks):
    model, stats = recorded
    test = tiny_tasks.test
    for_task = prune_experts(model, stats, keep=1, per_label=("task", 2))
    report = compression_report(
        {"original": model, "for task 2": for_task},
        test,
        objectives=[accuracy(test), params()],
        label="task",
    )
    tasks = sorted(set(test.extras["task"].tolist()))
    assert [c for c in report.columns if c.startswith("accuracy_task_")] == [
        f"accuracy_task_{t}" for t in tasks
    ]
    keep = test.extras["task"] == 2
    subset = (test.X[keep], test.y[keep])
    assert report.set_index("name").loc["for task 2", "accuracy_task_2"] == pytest.approx(
        evaluate_accuracy(for_task, subset)
    )
    with pytest.raises(MoEError, match="no per-example 'colour'"):
        compression_report({"original": model}, test, label="colour")


def _another(kind: str, model: nn.Module, stats, tasks) -> nn.Module:
    if kind == "extra layer":
        other = copy.deepcopy(model)
        other.moes = nn.ModuleList([*other.moes, copy.deepcopy(other.moes[0])])
        other.norms = nn.ModuleList([*other.norms, nn.LayerNorm(16)])
        return other
    if kind == "same shape":
        torch.manual_seed(123)
        return type(model).for_data(tasks, dim=16, hidden=16, num_experts=4, top_k=2)
    return merge_experts(model, stats, groups=2)  # keeps all 4 router slots


@pytest.mark.parametrize("kind", ["extra layer", "same shape", "merged copy"])
def test_stats_from_another_model_are_refused(recorded, tiny_tasks, kind):
    model, stats = recorded
    other = _another(kind, model, stats, tiny_tasks)
    state = _state(other)
    with pytest.raises(MoEError, match="another model"):
        prune_experts(other, stats, keep=2)
    with pytest.raises(MoEError, match="another model"):
        merge_experts(other, stats, groups=1)
    assert _same(other, state)
    if kind == "extra layer":
        return
    with pytest.raises(MoEError, match="layer 'moes.0' was recorded as"):  # names the layer
        prune_experts(other, stats, keep=2)
    with torch.no_grad(), RoutingRecorder(other) as rec:  # the model's own stats work
        other(tiny_tasks.test.X)
    assert all(m.num_experts == 2 for m in prune_experts(other, rec.stats(), keep=2).moes)


def test_pruning_counts_choices_dropped_by_capacity():
    """An expert the router wants but whose capacity overflows is still the most used one."""
    torch.manual_seed(0)
    moe = MoE(4, 8, 3, 1, capacity_factor=0.5)
    with torch.no_grad():
        moe.router.weight[0] = torch.tensor([5.0, 5.0, 5.0, 5.0])  # positive inputs: expert 0
    x = torch.rand(60, 4)
    with torch.no_grad(), RoutingRecorder(moe) as rec:
        moe(x)
    stats = rec.stats()
    assert stats.counts(0, include_dropped=True)[0] == 60 and stats.expert_load().dropped[0] > 0
    pruned = prune_experts(moe, stats, keep=1)
    assert torch.equal(pruned.router.weight[0], moe.router.weight[0])


def test_compression_report_recovers_copies_by_distillation(recorded, tiny_tasks):
    """``recover=``: each variant's copy is distilled from the baseline and reported beside
    it; the given models never change, and the copy agrees with the baseline more."""
    model, stats = recorded
    pruned = prune_experts(model, stats, keep=1)
    states = {"original": _state(model), "pruned": _state(pruned)}
    X = tiny_tasks.train.X
    with torch.no_grad():
        reference = model(X).argmax(-1)

    def agree(m, _arch=None):
        with torch.no_grad():
            return 100.0 * float((m(X).argmax(-1) == reference).float().mean())

    objectives = [Objective("agree", "maximize", agree), params()]
    report = compression_report(
        {"original": model, "pruned": pruned}, tiny_tasks, objectives=objectives,
        recover={"data": tiny_tasks.train, "steps": 30, "lr": 1e-2, "batch_size": 16},
    )  # fmt: skip
    table = report.set_index("name")
    assert list(table.index) == ["original", "pruned", "pruned recovered"]
    assert _same(model, states["original"]) and _same(pruned, states["pruned"])
    assert table.loc["pruned recovered", "params"] == table.loc["pruned", "params"]
    assert table.loc["pruned recovered", "experts"] == table.loc["pruned", "experts"]
    assert table.loc["pruned recovered", "agree"] > table.loc["pruned", "agree"]
    with pytest.raises(MoEError, match=r"recover must be a dict \{'data'"):
        compression_report({"original": model, "pruned": pruned}, tiny_tasks, recover={"steps": 3})
