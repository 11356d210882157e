"""RoutingRecorder on tiny Hugging Face MoE models built from configs (random weights, offline),
checked against routing recomputed here from the router weights; padding, generate(),
Switch capacity, and the transformers 4.x block layout (compression: test_hf_compress.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf
from hf_models import MOE
from torch import nn

from nasviz.moe import RoutingRecorder, find_moe_layers


def _switch(expert_capacity: int = 8) -> nn.Module:
    return tf.SwitchTransformersForConditionalGeneration(
        tf.SwitchTransformersConfig(
            vocab_size=64,
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=2,
            num_experts=4,
            expert_capacity=expert_capacity,
            num_sparse_encoder_layers=1,
            num_sparse_decoder_layers=1,
        )
    )


_MODELS = {**MOE, "switch": _switch}
_LAYERS = {
    "mixtral": ["model.layers.0.mlp", "model.layers.1.mlp"],
    "qwen2_moe": ["model.layers.0.mlp", "model.layers.1.mlp"],
    "qwen3_moe": ["model.layers.0.mlp", "model.layers.1.mlp"],
    "olmoe": ["model.layers.0.mlp", "model.layers.1.mlp"],
    "switch": ["encoder.block.1.layer.1.mlp", "decoder.block.1.layer.2.mlp"],
}


def _run(name: str, model: nn.Module, ids: torch.Tensor, **kwargs) -> torch.Tensor:
    extra = {"decoder_input_ids": ids[:, :5]} if name == "switch" else {}
    return model(input_ids=ids, **extra, **kwargs).logits


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _block_inputs(model: nn.Module) -> tuple[list, list[torch.Tensor]]:
    """Pre-hooks on every MoE block that keep its input hidden states (B, T, D)."""
    seen: list[torch.Tensor] = []
    handles = [
        hf.block.register_forward_pre_hook(
            lambda m, args, kwargs: seen.append(
                (args[0] if args else kwargs["hidden_states"]).detach()
            ),
            with_kwargs=True,
        )
        for _, _, hf in find_moe_layers(model)
    ]
    return handles, seen


def _expected_topk(hidden: torch.Tensor, weight: torch.Tensor, k: int, normalize: bool):
    """Softmax top-k routing recomputed from the router weights: (probs, experts, gates)."""
    logits = hidden.reshape(-1, hidden.shape[-1]) @ weight.detach().t()  # (N, E)
    probs = torch.softmax(logits.float(), dim=-1)
    gates, experts = probs.topk(k, dim=-1)
    if normalize:
        gates = gates / gates.sum(dim=-1, keepdim=True)
    return probs, experts, gates


@pytest.fixture(scope="module", params=list(_MODELS))
def hf_model(request):
    torch.manual_seed(0)
    return request.param, _MODELS[request.param]().eval()


def test_finds_every_moe_block(hf_model):
    name, model = hf_model
    assert [n for n, _, _ in find_moe_layers(model)] == _LAYERS[name]


def test_recording_matches_routing_recomputed_from_the_router_weights(hf_model):
    name, model = hf_model
    ids = torch.randint(0, 64, (3, 7), generator=torch.Generator().manual_seed(1))
    hooks_before = _hooks(model)
    handles, inputs = _block_inputs(model)
    with torch.no_grad():
        before = _run(name, model, ids)
        inputs.clear()
        with RoutingRecorder(model, labels={"source": ["a", "b", "a"]}) as rec:
            during = _run(name, model, ids)
    for h in handles:
        h.remove()
    assert torch.equal(before, during)  # recording changes nothing
    assert _hooks(model) == hooks_before  # and leaves no hook behind
    recording = rec.recording()
    for i, (layer, (_, _, hf)) in enumerate(
        zip(recording.layers, find_moe_layers(model), strict=True)
    ):
        if name == "switch":
            probs, experts, gates = _expected_topk(inputs[i], hf.weight, 1, normalize=False)
        else:
            config = model.config
            normalize = name == "mixtral" or config.norm_topk_prob
            probs, experts, gates = _expected_topk(inputs[i], hf.weight, 2, normalize)
        assert probs.std() > 1e-3  # untied random routing, so the comparison means something
        assert np.array_equal(layer.experts, experts.numpy())
        np.testing.assert_allclose(layer.probs, probs.numpy(), rtol=1e-4, atol=1e-6)
        if name != "switch":
            np.testing.assert_allclose(layer.gates, gates.numpy(), rtol=1e-4, atol=1e-6)
    first = recording.layers[0]
    assert np.array_equal(first.token, ids.reshape(-1).numpy())
    assert np.array_equal(first.example, np.repeat(np.arange(3), 7))
    assert rec.stats().by_label("source", layer=0).index.tolist() == ["a", "b"]


def test_switch_capacity_drops_are_recorded():
    torch.manual_seed(0)
    model = _switch(expert_capacity=1).eval()
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(3))
    handles, inputs = _block_inputs(model)
    with torch.no_grad(), RoutingRecorder(model) as rec:
        _run("switch", model, ids)
    for h in handles:
        h.remove()
    layer = rec.recording().layers[0]  # the encoder's sparse layer: 2 sequences x 7 tokens
    hf = find_moe_layers(model)[0][2]
    logits = inputs[0] @ hf.weight.detach().t()  # (B, T, E)
    choice = torch.nn.functional.one_hot(logits.argmax(-1), 4)  # (B, T, E)
    kept = (
        ((choice.cumsum(dim=1) <= 1) & (choice == 1)).any(-1).reshape(-1)
    )  # capacity 1 per sequence
    assert np.array_equal(layer.dropped[:, 0], (~kept).numpy()) and layer.dropped.any()
    assert (layer.gates[layer.dropped] == 0).all() and (layer.gates[~layer.dropped] > 0).all()
    per_sequence = np.zeros((2, 4), int)
    np.add.at(per_sequence, (layer.example[~layer.dropped[:, 0]], layer.experts[~layer.dropped]), 1)
    assert per_sequence.max() <= 1
    load = rec.stats().expert_load()
    assert load[load.layer_index == 0]["dropped"].sum() == int((~kept).sum())


def test_padding_tokens_are_left_out():
    torch.manual_seed(0)
    model = _MODELS["mixtral"]().eval()
    ids = torch.randint(2, 64, (2, 6), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding
    with torch.no_grad(), RoutingRecorder(model) as rec:
        model(input_ids=ids, attention_mask=mask)
    layer = rec.recording().layers[1]
    real = mask.reshape(-1).bool().numpy()
    assert len(layer) == 10 and np.array_equal(layer.token, ids.reshape(-1).numpy()[real])
    assert np.array_equal(layer.example, np.repeat([0, 1], 6)[real])


def test_generate_records_decode_steps_as_the_same_examples():
    torch.manual_seed(0)
    model = _MODELS["mixtral"]().eval()
    ids = torch.randint(2, 64, (2, 5), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    with torch.no_grad(), RoutingRecorder(model, labels={"prompt": ["short", "long"]}) as rec:
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=3,
            min_new_tokens=3,
            do_sample=False,
            pad_token_id=0,
        )
    recording = rec.recording()
    assert recording.num_examples == 2  # prompts, not prompts + decode steps
    layer = recording.layers[0]
    # the prompt's real tokens, then the two generated tokens that were fed back
    for example, start, prompt in ((0, 2, 3), (1, 0, 5)):
        rows = np.flatnonzero(layer.example == example)
        assert np.array_equal(layer.token[rows], out[example, start:7].numpy())
        assert layer.position[rows].tolist() == list(range(prompt + 2))
    per_prompt = rec.stats().by_label("prompt", layer=0, normalize=False).sum(axis=1)
    assert per_prompt.to_dict() == {"short": (3 + 2) * 2, "long": (5 + 2) * 2}  # top-2


def test_hooks_removed_after_exception(hf_model):
    _, model = hf_model
    before = _hooks(model)
    with pytest.raises(ValueError, match="stop"), RoutingRecorder(model):
        raise ValueError("stop")
    assert _hooks(model) == before


# ---- transformers 4.x layout: a Linear `gate` inside the sparse-MoE block -----------------------
class MixtralSparseMoeBlock(nn.Module):
    """The transformers 4.45-4.57 Mixtral block's routing, step for step (its experts reduced
    to one Linear each): the gate is a plain Linear, the block does softmax / top-k /
    renormalization itself. Named like the original, which is how the recorder knows it."""

    norm = True

    def __init__(self, dim: int, num_experts: int, top_k: int) -> None:
        super().__init__()
        self.num_experts, self.top_k = num_experts, top_k
        self.gate = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_experts))
        self.computed: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length, dim = hidden_states.shape
        hidden_states = hidden_states.view(-1, dim)
        router_logits = self.gate(hidden_states)
        weights = torch.softmax(router_logits, dim=1, dtype=torch.float)
        weights, selected = torch.topk(weights, self.top_k, dim=-1)
        if self.norm:
            weights /= weights.sum(dim=-1, keepdim=True)
        self.computed.append((selected, weights))
        out = torch.zeros_like(hidden_states)
        for e, expert in enumerate(self.experts):
            token, slot = (selected == e).nonzero(as_tuple=True)
            out.index_add_(0, token, expert(hidden_states[token]) * weights[token, slot, None])
        return out.view(batch, length, dim), router_logits


class Qwen2MoeSparseMoeBlock(MixtralSparseMoeBlock):
    """transformers 4.x Qwen2-MoE: the same, renormalizing only when ``norm_topk_prob``, plus a
    shared expert with its own one-output gate (which must not be taken for a router)."""

    def __init__(self, dim: int, num_experts: int, top_k: int) -> None:
        super().__init__(dim, num_experts, top_k)
        self.norm = self.norm_topk_prob = False
        self.shared_expert_gate = nn.Linear(dim, 1, bias=False)


class _Legacy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(32, 8)
        self.layers = nn.ModuleList(
            [MixtralSparseMoeBlock(8, 4, 2), Qwen2MoeSparseMoeBlock(8, 4, 2)]
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids)
        for layer in self.layers:
            x = x + layer(x)[0]
        return x


def test_transformers_4_linear_gate_blocks_are_recorded():
    torch.manual_seed(0)
    model = _Legacy().eval()
    found = find_moe_layers(model)
    assert [(n, hf.kind, hf.normalize) for n, _, hf in found] == [
        ("layers.0", "gate", True),
        ("layers.1", "gate", False),
    ]
    ids = torch.randint(0, 32, (3, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(ids)
        with RoutingRecorder(model) as rec:
            during = model(ids)
    assert torch.equal(before, during)
    for layer, block in zip(rec.recording().layers, model.layers, strict=True):
        selected, weights = block.computed[-1]
        assert np.array_equal(layer.experts, selected.numpy())
        np.testing.assert_allclose(layer.gates, weights.numpy(), rtol=1e-6)
        assert np.array_equal(layer.token, ids.reshape(-1).numpy())
    assert not np.allclose(rec.recording().layers[1].gates.sum(axis=1), 1.0)  # not renormalized
