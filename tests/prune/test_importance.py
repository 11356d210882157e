"""Importance of Hugging Face heads, FFN neurons and layers from a calibration pass, and the
plans built from it."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from hf_models import build, logits, reloaded, state_hash
from torch.utils.data import DataLoader, TensorDataset

from nasviz import data as nvdata
from nasviz.errors import ConfigError, MaskError
from nasviz.hf import adapter_for
from nasviz.prune import Importance, prune_neurons

_IDS = torch.randint(3, 64, (6, 10), generator=torch.Generator().manual_seed(2))


def _o_inputs(model):
    """Hooks keeping every layer's output-projection input (B, T, h*d)."""
    adapter, seen = adapter_for(model), {}
    for i in range(adapter.num_layers):
        adapter.attention(i).o.module.register_forward_pre_hook(
            lambda m, args, i=i: seen.setdefault(i, []).append(args[0].detach())
        )
    return seen


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_activation_scores_are_mean_contribution_norms(name):
    model, probe = build(name), build(name)
    imp = Importance.for_data(model, _IDS, batch_size=3)
    seen = _o_inputs(probe)
    with torch.no_grad():
        probe(_IDS)
    adapter = adapter_for(probe)
    for i in range(3):
        a = adapter.attention(i)
        z = torch.cat(seen[i]).reshape(6, 10, a.heads, a.head_dim)  # (B, T, h, d)
        w = a.o.columns().detach()  # (D, h*d)
        for h in range(a.heads):
            contribution = z[:, :, h] @ w[:, h * a.head_dim : (h + 1) * a.head_dim].t()  # (B, T, D)
            expected = contribution.norm(dim=-1).mean().item()
            got = imp.head_matrix().loc[i, h]
            assert got == pytest.approx(expected, rel=1e-4)
    assert imp.tokens == 60 and imp.head_matrix().shape == (3, 4)


def test_block_influence_is_one_minus_cosine_of_layer_input_and_output():
    model = build("llama")
    imp = Importance.for_data(model, _IDS)
    with torch.no_grad():
        hidden = model(
            _IDS, output_hidden_states=True
        ).hidden_states  # embeddings, layer 0 out, ...
    for i in range(2):  # the last entry is after the final norm
        cos = torch.nn.functional.cosine_similarity(hidden[i], hidden[i + 1], dim=-1)
        expected = (1 - cos).mean().item()
        assert imp.layers.loc[i, "block_influence"] == pytest.approx(expected, rel=1e-4)


def test_padding_tokens_do_not_count():
    model = build("llama")
    lengths = [10, 6, 8]
    ids = _IDS[:3].clone()
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        ids[row, n:] = 0  # right padding: a causal model's real tokens never see it
    padded = Importance.for_data(model, {"input_ids": ids, "attention_mask": mask})
    alone = Importance.for_data(model, [ids[row : row + 1, :n] for row, n in enumerate(lengths)])
    assert padded.tokens == alone.tokens == sum(lengths)
    np.testing.assert_allclose(padded.heads["score"], alone.heads["score"], rtol=1e-4)
    np.testing.assert_allclose(padded.neurons["score"], alone.neurons["score"], rtol=1e-4)
    np.testing.assert_allclose(
        padded.layers["block_influence"], alone.layers["block_influence"], rtol=1e-4
    )


@pytest.mark.parametrize("method", ["activation", "taylor"])
def test_a_silenced_head_and_neuron_score_zero_and_the_model_is_left_alone(method):
    model = build("llama")
    adapter = adapter_for(model)
    with torch.no_grad():
        adapter.attention(1).o.columns()[:, 8:16] = 0.0  # head 1 of layer 1 writes nothing
        adapter.ffn(2).output.columns()[:, 5] = 0.0  # neuron 5 of layer 2 neither
    model.train()
    frozen = model.model.embed_tokens.weight
    frozen.requires_grad_(False)
    before = state_hash(model)
    imp = Importance.for_data(model, _IDS, method=method)
    assert state_hash(model) == before and model.training and not frozen.requires_grad
    assert all(p.grad is None for p in model.parameters())
    heads = imp.head_matrix()
    assert heads.loc[1, 1] == 0.0 and (heads.drop(columns=1).loc[1] > 0).all()
    neurons = imp.neurons[imp.neurons["layer"] == 2].set_index("neuron")["score"]
    assert neurons[5] == 0.0 and (neurons.drop(5) > 0).all()


def test_taylor_on_a_classifier_takes_labels_from_a_split_and_needs_them():
    model = build("bert")
    split = nvdata.Split(_IDS, torch.tensor([0, 1, 2, 0, 1, 2]))
    imp = Importance.for_data(model, split, method="taylor", batch_size=2)
    assert imp.method == "taylor" and (imp.heads["score"] > 0).all()
    with pytest.raises(
        ConfigError, match="taylor importance needs a loss: give batches with labels"
    ):
        Importance.for_data(model, _IDS, method="taylor")


def test_calibration_data_of_every_kind():
    model = build("gpt2")
    reference = Importance.for_data(model, _IDS, batch_size=2).heads["score"]
    dataset = nvdata.Dataset(
        "ids", *(nvdata.Split(_IDS, torch.zeros(6)) for _ in range(3)), 2, (10,)
    )
    for data in (
        {"input_ids": _IDS},
        [(_IDS[:4], None), _IDS[4:]],
        ({"input_ids": _IDS[i : i + 2]} for i in range(0, 6, 2)),
        dataset,
    ):
        np.testing.assert_allclose(
            Importance.for_data(model, data).heads["score"], reference, rtol=1e-5
        )
    assert Importance.for_data(model, _IDS, batch_size=2, max_batches=1).tokens == 20
    for bad, message in (
        (3.5, "calibration data must be a nasviz Dataset"),
        ([{"ids": _IDS}], r"dict with 'input_ids'; got dict with keys \['ids'\]"),
        ([], "holds no rows"),
    ):
        with pytest.raises(ConfigError, match=message):
            Importance.for_data(model, bad)
    with pytest.raises(ConfigError, match="method must be one of"):
        Importance.for_data(model, _IDS, method="l1")


def test_calibration_through_the_training_layers_data_handling():
    """DataLoaders, torch Datasets and Hugging Face datasets are read by nasviz.data's
    as_batches; the scores equal those of the same token ids as a tensor."""
    model = build("gpt2")
    reference = Importance.for_data(model, _IDS, batch_size=2).heads["score"]
    table = datasets.Dataset.from_dict(
        {"input_ids": _IDS.tolist(), "label": [0] * len(_IDS), "text": ["x"] * len(_IDS)}
    )
    for data in (
        TensorDataset(_IDS),
        DataLoader(TensorDataset(_IDS), batch_size=2),
        table,
        table.to_iterable_dataset(),
    ):
        np.testing.assert_allclose(
            Importance.for_data(model, data, batch_size=2).heads["score"], reference, rtol=1e-5
        )


def test_vision_and_moe_models_are_scored():
    vit = build("vit")
    imp = Importance.for_data(
        vit, torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    )
    assert imp.tokens == 4 * 5 and len(imp.neurons) == 3 * 48  # 4 patches + the class token
    mixtral = Importance.for_data(build("mixtral"), _IDS)
    assert len(mixtral.heads) == 4 and mixtral.neurons.empty and len(mixtral.layers) == 2


def test_uniform_plan_keeps_the_best_heads_under_the_gqa_rule_and_saves():
    model = build("llama")
    imp = Importance.for_data(model, _IDS)
    plan = imp.plan(head_sparsity=0.5, neuron_sparsity=0.25, drop_layers=1)
    lowest = int(imp.layers["block_influence"].idxmin())
    assert plan.drop == (lowest,)
    for heads in plan.heads.values():
        groups = {h // 2 for h in heads}
        assert len(heads) == 2 and len(groups) in (1, 2)  # a whole group, or one head per group
    layouts = {len({h // 2 for h in heads}) for heads in plan.heads.values()}
    assert len(layouts) == 1  # the same layout in every layer: one config fits
    for i, kept in plan.neurons.items():
        layer = imp.neurons[imp.neurons["layer"] == i]["score"].to_numpy()
        assert len(kept) == 36 and min(layer[list(kept)]) >= max(np.delete(layer, kept))
    assert lowest not in plan.heads and lowest not in plan.neurons
    x = {"input_ids": _IDS}
    plan.apply(model)
    assert model.config.num_attention_heads == 2 and model.config.intermediate_size == 36
    assert torch.equal(logits(reloaded(model), x), logits(model, x))
    with pytest.raises(ConfigError, match="restructured since these scores were computed"):
        imp.plan(head_sparsity=0.5)


def test_head_counts_the_config_rejects_are_skipped():
    model = build("llama")  # hidden 32: Llama's config needs hidden % heads == 0, so not 3 heads
    plan = Importance.for_data(model, _IDS).plan(head_sparsity=0.25)  # 3 of 4 would be nearest
    assert {len(h) for h in plan.heads.values()} == {4}  # 4 is as near as 2, and keeps more


def test_non_uniform_plan_ranks_across_layers_and_needs_in_memory():
    model = build("bert")
    imp = Importance.for_data(model, _IDS)
    plan = imp.plan(neuron_sparsity=0.5, uniform=False)
    kept = sum(len(v) for v in plan.neurons.values())
    assert abs(kept - 72) <= 3  # about half of all 144 neurons, wherever they are
    cut = imp.neurons["score"].quantile(0.5, interpolation="lower")
    for i, neurons in plan.neurons.items():
        assert (
            imp.neurons[imp.neurons["layer"] == i]["score"].to_numpy()[list(neurons)] > cut
        ).all()
    if len({len(v) for v in plan.neurons.values()}) > 1:
        with pytest.raises(ConfigError, match="different FFN neuron counts"):
            plan.apply(model)
    plan.apply(model, in_memory=True)


def test_bad_plan_arguments():
    model = build("llama")
    imp = Importance.for_data(model, _IDS)
    with pytest.raises(MaskError, match="head_sparsity must be in"):
        imp.plan(head_sparsity=1.0)
    with pytest.raises(ConfigError, match="drop_layers=3 would remove every layer"):
        imp.plan(drop_layers=3)
    with pytest.raises(ConfigError, match="drop_layers must be an int"):
        imp.plan(drop_layers=1.5)
    olmoe = Importance.for_data(build("olmoe"), _IDS)
    with pytest.raises(ConfigError, match="OLMoE heads cannot be pruned"):
        olmoe.plan(head_sparsity=0.5)
    prune_neurons(model, {0: range(10)}, in_memory=True)
    with pytest.raises(ConfigError, match="restructured"):
        imp.plan(neuron_sparsity=0.5)
