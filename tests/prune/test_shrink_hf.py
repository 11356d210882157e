"""prune.channels / shrink / sweep on Hugging Face and other token models: whole heads (never
rows across heads), outputs that are not tensors, checks on by default, token inputs."""

from __future__ import annotations

import pytest
import torch
from hf_models import build, logits, reloaded, state_hash
from prune_helpers import mlp, snapshot, unchanged
from torch import nn

from nasviz.errors import ConfigError, NasvizWarning, ShapeError
from nasviz.hf import adapter_for
from nasviz.objectives import params
from nasviz.prune import Masks, channels, savings, shrink, sweep
from nasviz.prune._inputs import example_input_for

_IDS = torch.randint(3, 64, (2, 8), generator=torch.Generator().manual_seed(0))


def _rows_kept(masks, name):
    return masks[name].any(dim=1)  # (rows,) True where a row survives


def test_bert_loses_whole_heads_and_shrinks_to_the_masked_outputs():
    model = build("bert")
    masks = channels(model, 0.5)
    for i in range(3):
        pre = f"bert.encoder.layer.{i}.attention"
        q, k, v = (
            _rows_kept(masks, f"{pre}.self.{p}.weight").reshape(4, 8)
            for p in ("query", "key", "value")
        )
        o = masks[f"{pre}.output.dense.weight"].any(dim=0).reshape(4, 8)
        for rows in (q, k, v, o):
            assert (rows.all(dim=1) | ~rows.any(dim=1)).all()  # a head is kept or gone, whole
            assert torch.equal(rows.all(dim=1), q.all(dim=1))  # the same heads everywhere
        assert int(q.all(dim=1).sum()) == 2
    masked = build("bert")
    masks.apply(masked)
    with pytest.warns(NasvizWarning, match="BERT heads cannot be saved"):
        small = shrink(model, masks, example_input=_IDS)  # no mismatch warning: outputs agree
    attn = adapter_for(small).attention(0)
    assert (attn.heads, small.config.intermediate_size) == (2, 24)
    torch.testing.assert_close(
        logits(small, {"input_ids": _IDS}), logits(masked, {"input_ids": _IDS})
    )


def test_gqa_model_loses_whole_key_value_groups_and_saves():
    model = build("llama")
    before = state_hash(model)
    masks = channels(model, 0.5)
    small = shrink(model, masks)  # no warning: the config expresses the result
    assert state_hash(model) == before
    config = small.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.intermediate_size) == (
        2,
        1,
        24,
    )
    assert torch.equal(
        logits(reloaded(small), {"input_ids": _IDS}), logits(small, {"input_ids": _IDS})
    )
    assert savings(model, masks).shrunk_params == sum(p.numel() for p in small.parameters())


class _DictOut(nn.Module):
    """A model returning a dict, with a sigmoid (f(0) != 0) after the prunable hidden layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(8, 16), nn.Sigmoid(), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> dict:
        hidden = self.act(self.fc1(x))
        return {"logits": self.fc2(hidden), "hidden": (hidden,)}


def test_outputs_that_are_not_tensors_are_compared_and_differences_are_never_silent():
    torch.manual_seed(0)
    model = _DictOut()
    masks = channels(model, 0.5, example_input=(2, 8))  # the nested "hidden" output narrows
    with pytest.warns(
        NasvizWarning, match=r"\(output tensor 1 has shape \(2, 8\) instead of \(2, 16\)\)"
    ):
        shrink(model, masks)
    rows = torch.arange(16) >= 8  # fc1 channels 0-7 zeroed, but not fc2's inputs: sigmoid(0) = 0.5
    zeroed = Masks({"fc1.weight": rows[:, None].expand(16, 8), "fc1.bias": rows})
    with pytest.warns(NasvizWarning, match=r"\(output tensor 0 differs by up to"):
        shrink(model, zeroed, example_input=(2, 8))
    run = sweep(model, ["channels"], [0.5], [params()], input_shape=(2, 8))
    run.run()
    row = run.results.iloc[0]
    assert row["state"] == "FAIL" and "outputs differ from the masked model's" in row["error"]


def test_token_models_get_token_ids_in_sweeps_and_a_float_input_is_a_clear_error():
    model = build("bert")
    x = example_input_for(model, (1, 16))
    assert x.dtype == torch.long and x.shape == (1, 16) and int(x.max()) < 64
    run = sweep(model, ["channels"], [0.5], [params()], input_shape=(1, 16))
    run.run()
    row = run.results.iloc[0]
    assert row["state"] == "COMPLETE", row["error"]
    assert row["params"] < sum(p.numel() for p in model.parameters())
    with pytest.raises(
        ConfigError, match="takes token ids .* example_input is a torch.float32 tensor"
    ):
        channels(model, 0.5, example_input=torch.randn(1, 16))
    embedding = nn.Sequential(nn.Embedding(10, 8), nn.Flatten(), nn.Linear(32, 4))
    assert example_input_for(embedding, (2, 4)).dtype == torch.long


def test_shrink_on_an_input_of_the_wrong_shape_names_the_shape():
    model = mlp()
    masks = channels(model, 0.5)
    masks.apply(model)
    before = snapshot(model)
    with pytest.raises(ShapeError, match=r"forward pass on an input of shape \(1, 3\) failed"):
        shrink(model, masks, example_input=(1, 3))
    assert unchanged(model, before)
