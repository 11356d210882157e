"""RoutingStats: every table checked against a plain count, persistence, comparison."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasviz.errors import CheckpointError, MoEError
from nasviz.moe import LayerRecord, Recording, RoutingStats


def synthetic(
    n_examples: int, length: int, num_experts: int, k: int, seed: int, layers: int = 2
) -> Recording:
    """A recording with random (valid) routing, built without a model."""
    rng = np.random.default_rng(seed)
    n = n_examples * length
    records = []
    for i in range(layers):
        logits = rng.normal(size=(n, num_experts)).astype(np.float32)
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        experts = np.argsort(-probs, axis=1)[:, :k]
        gates = np.take_along_axis(probs, experts, 1)
        gates = gates / gates.sum(1, keepdims=True)
        records.append(
            LayerRecord(
                f"layer{i}",
                num_experts,
                k,
                experts,
                gates.astype(np.float32),
                probs,
                logits,
                np.repeat(np.arange(n_examples), length),
                np.tile(np.arange(length), n_examples),
                rng.integers(0, 50, size=n),
            )
        )
    labels = {
        "task": rng.integers(0, 3, size=n_examples),
        "name": np.array([f"s{i % 2}" for i in range(n_examples)]),
    }
    return Recording(tuple(records), n_examples, labels)


recordings = st.builds(
    synthetic,
    st.integers(1, 12),
    st.integers(1, 6),
    st.integers(2, 6),
    st.integers(1, 2),
    st.integers(0, 10_000),
)


@settings(max_examples=30)
@given(recordings)
def test_load_counts_match_a_plain_count(recording):
    stats = RoutingStats(recording)
    load = stats.expert_load()
    with pytest.warns(FutureWarning, match=r"RoutingStats.load\(\) is now expert_load\(\)"):
        assert stats.load().equals(load)
    for i, layer in enumerate(recording.layers):
        part = load[load.layer_index == i]
        expected = [int((layer.experts == e).sum()) for e in range(layer.num_experts)]
        assert part["count"].tolist() == expected
        assert part["fraction"].sum() == pytest.approx(1.0)
    matrix = stats.load_matrix("count")
    assert (
        matrix.index.tolist() == stats.layers and matrix.to_numpy().sum() == recording.num_decisions
    )


@settings(max_examples=30)
@given(recordings)
def test_by_label_rows_are_shares_and_sum_to_layer_counts(recording):
    stats = RoutingStats(recording)
    counts = stats.by_label("task", normalize=False)
    assert counts.to_numpy().sum() == recording.num_decisions
    layer = recording.layers[0]
    per_token_task = recording.labels["task"][layer.example]
    for value in counts.index:
        expected = np.bincount(
            layer.experts[per_token_task == value].ravel(), minlength=layer.num_experts
        )
        assert (
            stats.by_label("task", layer=0, normalize=False).loc[value].tolist()
            == expected.tolist()
        )
    np.testing.assert_allclose(stats.by_label("task").sum(axis=1), 1.0)
    first = stats.by_label("task", layer=0, normalize=False, first_choice=True)
    assert first.to_numpy().sum() == len(layer)


@settings(max_examples=30)
@given(recordings)
def test_coactivation_entropy_and_balance(recording):
    stats = RoutingStats(recording)
    co = stats.coactivation(0)
    assert np.array_equal(np.diag(co.to_numpy()), stats.counts(0))
    assert np.array_equal(co.to_numpy(), co.to_numpy().T)
    entropy = stats.entropy()
    assert (
        (entropy.router_entropy_norm >= -1e-6) & (entropy.router_entropy_norm <= 1 + 1e-6)
    ).all()
    balance = stats.balance()
    counts = stats.counts(0).astype(float)
    assert balance.cv[0] == pytest.approx(counts.std() / counts.mean())
    assert balance.max_over_mean[0] == pytest.approx(counts.max() / counts.mean())


def test_uniform_routing_has_zero_cv_and_full_entropy():
    layer = LayerRecord(
        "l",
        4,
        1,
        np.arange(8)[:, None] % 4,
        np.ones((8, 1), np.float32),
        np.full((8, 4), 0.25, np.float32),
        np.zeros((8, 4), np.float32),
        np.arange(8),
        np.zeros(8, np.int64),
        np.arange(8),
    )
    stats = RoutingStats(Recording((layer,), 8))
    assert stats.balance().cv[0] == 0 and stats.balance().balance_loss[0] == pytest.approx(1.0)
    assert stats.entropy().router_entropy_norm[0] == pytest.approx(1.0)
    assert stats.entropy().load_entropy_norm[0] == pytest.approx(1.0)


def test_sequence_token_expert_and_tokens_views():
    recording = synthetic(4, 5, 4, 2, seed=3)
    stats = RoutingStats(recording)
    seq = stats.sequence(2)
    layer = recording.layers[1]
    rows = layer.example == 2
    assert seq.index.tolist() == list(range(5))
    assert seq["layer1"].tolist() == layer.experts[rows, 0].tolist()
    assert (
        seq["token"].tolist()
        == recording.layers[0].token[recording.layers[0].example == 2].tolist()
    )
    te = stats.token_expert(2, layer=1)
    np.testing.assert_allclose(te.sum(axis=1), 1.0, rtol=1e-6)
    assert (te.to_numpy() > 0).sum(axis=1).tolist() == [2] * 5
    listed = stats.tokens("layer0", 1)
    assert len(listed) == int((recording.layers[0].experts == 1).sum())
    assert (listed.gate.diff().dropna() <= 0).all()
    assert listed.task.tolist() == recording.labels["task"][listed.example].tolist()
    with pytest.raises(MoEError):
        stats.sequence(4)
    with pytest.raises(MoEError):
        stats.tokens(0, 4)


def test_mutual_information_is_log_n_for_perfect_specialization_and_zero_for_none():
    n, E = 40, 4
    task = np.arange(n) % E
    experts = task[:, None]
    probs = np.eye(E, dtype=np.float32)[task]
    layer = LayerRecord(
        "l",
        E,
        1,
        experts,
        np.ones((n, 1), np.float32),
        probs,
        probs,
        np.arange(n),
        np.zeros(n, np.int64),
        np.arange(n),
    )
    stats = RoutingStats(Recording((layer,), n, {"task": task, "flat": np.zeros(n)}))
    assert stats.mutual_information("task") == pytest.approx(np.log(E))
    assert stats.mutual_information("flat") == pytest.approx(0.0)


def test_save_and_load_round_trip(tmp_path):
    stats = RoutingStats(synthetic(6, 3, 4, 2, seed=1))
    path = stats.save(tmp_path / "routing")
    assert path.suffix == ".npz"
    again = RoutingStats.from_file(path)
    pd.testing.assert_frame_equal(again.expert_load(), stats.expert_load())
    pd.testing.assert_frame_equal(again.by_label("name"), stats.by_label("name"))
    for a, b in zip(again.recording.layers, stats.recording.layers, strict=True):
        assert np.array_equal(a.logits, b.logits) and a.name == b.name
    with np.load(path, allow_pickle=False) as npz:  # readable without pickle
        assert "meta" in npz.files


def test_load_of_a_foreign_file_is_checkpoint_error(tmp_path):
    np.savez(tmp_path / "x.npz", meta=np.array('{"format": "other"}'))
    with pytest.raises(CheckpointError):
        RoutingStats.from_file(tmp_path / "x.npz")


def test_compare_same_is_zero_and_shift_is_measured():
    a = RoutingStats(synthetic(10, 4, 4, 1, seed=0))
    assert (a.compare(a).delta == 0).all()
    b = RoutingStats(synthetic(10, 4, 4, 1, seed=5))
    table = b.compare(a, names=("new", "old"))
    assert {"fraction_new", "fraction_old", "delta", "tv_distance"} <= set(table.columns)
    first = table[table.layer == "layer0"]
    assert first.tv_distance.iloc[0] == pytest.approx(0.5 * first.delta.abs().sum())


def test_load_without_reroutes_to_remaining_experts():
    recording = synthetic(10, 4, 4, 2, seed=2)
    stats = RoutingStats(recording)
    table = stats.load_without(0, [1])
    assert table.fraction_after[1] == 0 and table.fraction_after.sum() == pytest.approx(1.0)
    with pytest.raises(MoEError):
        stats.load_without(0, [0, 1, 2, 3])


def test_unknown_label_and_layer_are_moe_errors():
    stats = RoutingStats(synthetic(4, 2, 3, 1, seed=0))
    with pytest.raises(MoEError, match="no label"):
        stats.by_label("class")
    with pytest.raises(MoEError, match="no MoE layer named"):
        stats.counts("nope")
    with pytest.raises(MoEError, match="entries but"):
        stats.recording.with_labels(task=[1, 2])


def _with_drops(recording: Recording, seed: int) -> Recording:
    """The recording with a random share of assignments marked dropped by capacity (gate 0)."""
    rng = np.random.default_rng(seed)
    layers = []
    for layer in recording.layers:
        dropped = rng.random(layer.experts.shape) < 0.3
        gates = np.where(dropped, 0.0, layer.gates).astype(np.float32)
        layers.append(dataclasses.replace(layer, gates=gates, dropped=dropped))
    return Recording(tuple(layers), recording.num_examples, recording.labels)


@settings(max_examples=20)
@given(recordings, st.integers(0, 1000))
def test_dropped_assignments_are_not_load(recording, seed):
    stats = RoutingStats(_with_drops(recording, seed))
    load = stats.expert_load()
    for i, layer in enumerate(stats.recording.layers):
        part = load[load.layer_index == i]
        kept = [
            int(((layer.experts == e) & ~layer.dropped).sum()) for e in range(layer.num_experts)
        ]
        gone = [int(((layer.experts == e) & layer.dropped).sum()) for e in range(layer.num_experts)]
        assert part["count"].tolist() == kept and part["dropped"].tolist() == gone
        assert stats.counts(i, include_dropped=True).tolist() == [
            a + b for a, b in zip(kept, gone, strict=True)
        ]
        if sum(kept):
            assert part["fraction"].sum() == pytest.approx(1.0)
        assert stats.balance().dropped_fraction[i] == pytest.approx(layer.dropped.mean())
        assert np.diag(stats.coactivation(i).to_numpy()).tolist() == kept
    by_task = stats.by_label("task", normalize=False)
    assert by_task.to_numpy().sum() == sum(int((~r.dropped).sum()) for r in stats.recording.layers)
    everything = stats.by_label("task", normalize=False, include_dropped=True)
    assert everything.to_numpy().sum() == recording.num_decisions


def test_sequence_shows_the_expert_that_processed_each_token():
    recording = _with_drops(synthetic(3, 6, 5, 2, seed=4), seed=1)
    stats = RoutingStats(recording)
    seq = stats.sequence(1)
    layer = recording.layers[0]
    rows = np.flatnonzero(layer.example == 1)
    for row, got in zip(rows, seq[layer.name], strict=True):
        kept = [e for e, d in zip(layer.experts[row], layer.dropped[row], strict=True) if not d]
        assert got == (kept[0] if kept else -1)
    assert (seq[layer.name] == -1).any() or layer.dropped[rows].all(axis=1).sum() == 0


def test_compare_layers_puts_balance_and_entropy_side_by_side():
    a = RoutingStats(synthetic(10, 4, 4, 1, seed=0))
    same = a.compare_layers(a)
    assert (same.filter(like="_delta").to_numpy() == 0).all() and (same.tv_distance == 0).all()
    b = RoutingStats(_with_drops(synthetic(10, 4, 4, 1, seed=5), seed=2))
    table = a.compare_layers(b, names=("old", "new"))
    summary_a, summary_b = a.summary().set_index("layer"), b.summary().set_index("layer")
    for figure in (
        "cv",
        "max_over_mean",
        "balance_loss",
        "router_entropy_norm",
        "dropped_fraction",
    ):
        row = table.set_index("layer").loc["layer1"]
        assert row[f"{figure}_old"] == pytest.approx(summary_a.loc["layer1", figure])
        assert row[f"{figure}_new"] == pytest.approx(summary_b.loc["layer1", figure])
        assert row[f"{figure}_delta"] == pytest.approx(row[f"{figure}_new"] - row[f"{figure}_old"])
    tv = a.compare(b).groupby("layer").tv_distance.first()
    assert table.set_index("layer").tv_distance.to_dict() == pytest.approx(tv.to_dict())
    other = RoutingStats(dataclasses.replace(synthetic(2, 2, 4, 1, seed=0), layers=()))
    with pytest.raises(MoEError, match="share no layer"):
        a.compare_layers(other)


def test_drops_and_fingerprints_survive_save_and_load_and_old_files_load(tmp_path):
    recording = _with_drops(synthetic(5, 3, 4, 2, seed=1), seed=0)
    recording = dataclasses.replace(
        recording,
        layers=tuple(
            dataclasses.replace(r, fingerprint=f"moe E=4 router={i}")
            for i, r in enumerate(recording.layers)
        ),
    )
    again = RoutingStats.from_file(RoutingStats(recording).save(tmp_path / "r.npz"))
    assert again.recording.signature == recording.signature
    for a, b in zip(again.recording.layers, recording.layers, strict=True):
        assert np.array_equal(a.dropped, b.dropped)
    # a file written before drops and fingerprints were recorded (format 1) still loads
    with np.load(tmp_path / "r.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.endswith(".dropped")}
    meta = json.loads(str(arrays["meta"]))
    meta["format"] = "nasviz.moe.recording/1"
    for info in meta["layers"]:
        del info["fingerprint"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    old = RoutingStats.from_file(tmp_path / "old.npz")
    assert [fp for _, _, fp in old.recording.signature] == ["", ""]
    assert not old.recording.layers[0].dropped.any()
