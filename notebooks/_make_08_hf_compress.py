"""Generates notebooks/08_hf_compress.ipynb."""

from __future__ import annotations

from pathlib import Path

from _nb import code, md, params, write

CELLS = [
    md("""
# Compress a Hugging Face model: heads, FFN neurons, layers and experts

A smaller checkpoint you can still load with `from_pretrained`: this notebook scores every
attention head, FFN neuron and layer of a Hugging Face language model on calibration data,
prunes the least important ones **in place** (grouped-query attention respected, the config
rewritten), saves the result with `save_pretrained`, reloads it and checks that the logits are
identical and `generate()` still works. Then it does the same for the **experts** of a
mixture-of-experts model (pruning, task-aware pruning, merging) and puts every variant on the
same Pareto axes (perplexity, parameters, latency).

**Nothing is downloaded.** By default the models are tiny ones built from configs, **with random
weights** — their perplexities mean nothing, but every step runs exactly as it would on a real
checkpoint. Set `checkpoint` below to a folder holding your own model (what `save_pretrained`
wrote: `config.json`, weights, ideally a tokenizer) to compress it instead.
"""),
    params("""
seed = 0
checkpoint = ""  # a folder with your own causal LM (save_pretrained output); "" = tiny random Llama
sequences = 32  # calibration sequences
length = 32  # tokens per calibration sequence
method = "activation"  # importance: "activation" (Minitron) or "taylor" (needs a loss)
head_sparsity = 0.5  # share of query heads removed per layer
neuron_sparsity = 0.5  # share of FFN neurons removed per layer
drop_layers = 1  # layers removed (lowest block influence, as ShortGPT)
keep_experts = 2  # experts kept per MoE layer (of 4 in the tiny Mixtral)
merge_groups = 2  # experts left per MoE layer after merging
recover_steps = 20  # distillation steps recovering the pruned model (0: none)
out_dir = "runs/08_hf_compress"  # where the pruned checkpoints are saved
"""),
    code("""
import copy
from pathlib import Path

import torch
import transformers

import nasviz
from nasviz.moe import RoutingRecorder, compression_report, merge_experts, prune_experts
from nasviz.prune import Importance
from nasviz.ui import ImportanceView
from nasviz.viz import compression_figure

transformers.utils.logging.disable_progress_bar()  # no progress-bar widgets in a saved report

torch.manual_seed(seed)
if checkpoint:
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True)
    print(f"your checkpoint {checkpoint}: {type(model).__name__}")
else:
    config = transformers.LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        num_attention_heads=8,
        num_key_value_heads=4,  # grouped-query attention: 2 query heads per key/value head
        intermediate_size=176,
        num_hidden_layers=4,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = transformers.LlamaForCausalLM(config)
    print("RANDOM WEIGHTS: a tiny Llama built from a config (nothing downloaded); set `checkpoint` "
          "to compress your own model")
model.eval()
adapter = nasviz.hf.adapter_for(model)
print(adapter)
print("what its config can express:", adapter.limits())
"""),
    md("""
## Calibration data

Importance is measured on data the model sees. With your own checkpoint and its tokenizer we
tokenize a few sentences; otherwise (random weights, no tokenizer) random token ids do. Any
tensor of token ids, dict of tensors (`input_ids`, `attention_mask`), nasviz `Split` or iterable
of batches works.
"""),
    code("""
g = torch.Generator().manual_seed(seed)
tokenizer = None
if checkpoint and (Path(checkpoint) / "tokenizer_config.json").exists():
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
if tokenizer is not None:
    text = [
        "The quick brown fox jumps over the lazy dog.",
        "Structured pruning removes whole heads, neurons and layers.",
        "A smaller model answers faster and fits on smaller machines.",
    ] * (sequences // 3 + 1)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    calibration = dict(tokenizer(text[:sequences], return_tensors="pt", padding=True))
else:
    calibration = torch.randint(3, model.config.vocab_size, (sequences, length), generator=g)
held_out = torch.randint(3, model.config.vocab_size, (8, length), generator=g)
"""),
    md("""
## Importance of heads, neurons and layers

`Importance.for_data` runs one calibration pass with hooks (the model is not changed):

* **heads** and **FFN neurons**: with `method="activation"` (Minitron) each unit's mean
  contribution to the residual stream, `‖W_o[:, h] z_h‖` per token for a head and
  `|a_n| ‖W_down[:, n]‖` for a neuron; with `"taylor"` the first-order loss change if it were
  zeroed, `|Σ z · ∂L/∂z|`;
* **layers**: block influence `1 − cos(x_in, x_out)` (ShortGPT): a layer that barely changes
  its input is the first to go.

Every score is a DataFrame row. The view shows them as a layer × head heatmap; the sliders
build a pruning plan live and mark what it removes (✕). With grouped-query attention a layer
keeps whole key/value groups, or the same number of query heads in every group; with
"one size per layer" every layer keeps the same counts, which is what a config can store.
"""),
    code("""
importance = Importance.for_data(model, calibration, method=method)
print(importance)
importance.layers
"""),
    code("""
view = ImportanceView(
    importance, head_sparsity=head_sparsity, neuron_sparsity=neuron_sparsity, drop_layers=drop_layers
)
view
"""),
    md("""
## Prune, save, reload

The plan is what the sliders show (`view.plan`; `importance.plan(...)` builds the same without
a widget). `plan.apply` prunes a model **in place** and rewrites its config, so
`save_pretrained` / `from_pretrained` round-trip. We prune a copy and keep the original.
"""),
    code("""
plan = view.plan
display(plan.summary(model))
pruned = plan.apply(copy.deepcopy(model))
saved = Path(out_dir) / "pruned"
pruned.save_pretrained(saved)
reloaded = type(pruned).from_pretrained(saved).eval()
with torch.no_grad():
    same = torch.equal(reloaded(held_out).logits, pruned(held_out).logits)
print(f"saved to {saved}; reloaded logits identical: {same}")
assert same
print({k: getattr(reloaded.config, k) for k in ("num_hidden_layers", "num_attention_heads",
                                                 "num_key_value_heads", "intermediate_size")})
prompt = held_out[:2, :8]
generated = reloaded.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
                              do_sample=False)
generated[:, 8:]  # new tokens, through the key/value cache
"""),
    md("""
## Experts of a mixture-of-experts model

For Mixtral, Qwen2-MoE, Qwen3-MoE and OLMoE, `RoutingRecorder` records which experts every
token chooses; `prune_experts` keeps the most used experts per layer (router rows sliced,
expert count rewritten in the config); with `per_label` it ranks them by one task's tokens only
(UNCURL-style task-aware pruning); `merge_experts` (M-SMoE) aligns and averages each group
into its dominant expert, whose router row it keeps. All return copies that save and reload.
Stats recorded from another model (or from a compressed copy) are refused.

Here: a tiny random Mixtral, and two made-up "tasks" (even and odd calibration sequences).
"""),
    code("""
torch.manual_seed(seed)
moe = transformers.MixtralForCausalLM(transformers.MixtralConfig(
    vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
    max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0,
)).eval()
print("RANDOM WEIGHTS: a tiny Mixtral built from a config")
ids = torch.randint(3, 256, (sequences, length), generator=g)
moe_held_out = torch.randint(3, 256, (8, length), generator=g)
task = [i % 2 for i in range(sequences)]
with torch.no_grad(), RoutingRecorder(moe, labels={"task": task}) as rec:
    moe(ids)
stats = rec.stats()
stats.load_matrix()
"""),
    code("""
moe_variants = {
    "mixtral": moe,
    f"keep {keep_experts}": prune_experts(moe, stats, keep=keep_experts),
    f"keep {keep_experts}, task 0": prune_experts(moe, stats, keep=keep_experts, per_label=("task", 0)),
    f"merged {merge_groups}": merge_experts(moe, stats, groups=merge_groups),
}
for name, variant in list(moe_variants.items())[1:]:
    folder = Path(out_dir) / name.replace(" ", "_").replace(",", "")
    variant.save_pretrained(folder)
    again = type(variant).from_pretrained(folder).eval()
    with torch.no_grad():
        assert torch.equal(again(moe_held_out).logits, variant(moe_held_out).logits)
    print(f"{name}: {again.config.num_local_experts} experts per layer, reloaded identically")
"""),
    md("""
## Every variant on the Pareto axes

`compression_report` measures each variant the way a search measures subnets: perplexity on
held-out tokens (random here), parameters, latency at one sequence's shape, memory. With
`recover=` it also distils a copy of each variant from the dense model (the training layer's
`recover`: the teacher's logits on the calibration tokens) and reports it as "pruned
recovered". The figure puts them on perplexity × parameters (filled stars: on the front).
"""),
    code("""
recovery = {"data": calibration, "steps": recover_steps, "lr": 1e-3, "seed": seed} if recover_steps else None
report = compression_report({"dense": model, "pruned": pruned}, held_out, recover=recovery)
report[["name", "perplexity", "params", "latency", "memory_bytes", "params_saved_fraction"]]
"""),
    code("""
compression_figure(report)
"""),
    code("""
moe_report = compression_report(moe_variants, moe_held_out)
moe_report[["name", "perplexity", "params", "experts", "latency", "memory_saved_fraction"]]
"""),
]

if __name__ == "__main__":
    print(write(Path(__file__).with_name("08_hf_compress.ipynb"), CELLS))
