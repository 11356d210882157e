"""RoutingStats: DataFrames about a routing recording (load, labels, entropy, balance, ...).

Everything is aggregated with ``np.bincount`` and matrix products over whole arrays, never a
Python loop per token, so a million routing decisions summarize in well under a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nasviz._compat import renamed_method
from nasviz.errors import MoEError
from nasviz.moe._recording import LayerRecord, Recording

__all__ = ["RoutingStats"]


def _valid(
    record: LayerRecord, include_dropped: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened ``(token row, rank, expert)`` of every processed assignment: elastic padding
    (-1) left out, and assignments dropped by capacity unless ``include_dropped``."""
    n, k = record.experts.shape
    experts = record.experts.reshape(-1)
    keep = experts >= 0
    if not include_dropped:
        keep &= ~record.dropped.reshape(-1)
    rows = np.repeat(np.arange(n), k)[keep]
    ranks = np.tile(np.arange(k), n)[keep]
    return rows, ranks, experts[keep]


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -(p * logp).sum(axis=axis)


def _first_kept(record: LayerRecord, rows: np.ndarray) -> np.ndarray:
    """The best-ranked expert that processed each token of ``rows`` (-1: none did)."""
    experts = record.experts[rows]
    valid = (experts >= 0) & ~record.dropped[rows]
    first = experts[np.arange(len(rows)), valid.argmax(axis=1)] if len(rows) else experts[:, 0]
    return np.where(valid.any(axis=1), first, -1)


class RoutingStats:
    """Statistics of one :class:`~nasviz.moe.Recording`; every method returns a DataFrame
    (or a number) and leaves the recording unchanged.

    Load means assignments an expert processed: assignments dropped by a capacity limit are
    counted apart (``dropped`` columns) and, where a method says so, included on request.

    Args:
        recording: what a :class:`~nasviz.moe.RoutingRecorder` recorded (or :meth:`load` read).

    Thread contract: read-only after construction; safe to share between threads.
    """

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    def __repr__(self) -> str:
        r = self.recording
        return f"RoutingStats({len(r.layers)} layers, {r.num_examples} examples, {r.num_decisions} decisions, labels={list(r.labels)})"

    @property
    def layers(self) -> list[str]:
        return [layer.name for layer in self.recording.layers]

    @property
    def labels(self) -> list[str]:
        return list(self.recording.labels)

    def save(self, path: str | Path) -> Path:
        """Saves the recording (one ``.npz``, no pickle); :meth:`from_file` reads it back."""
        return self.recording.save(path)

    @classmethod
    def from_file(cls, path: str | Path) -> RoutingStats:
        """Stats of a recording saved by :meth:`save` (read without pickle)."""
        return cls(Recording.load(path))

    # ---- load -------------------------------------------------------------------------------
    def counts(self, layer: int | str, include_dropped: bool = False) -> np.ndarray:
        """Assignments per expert of one layer, (E,) int64: processed ones, plus those dropped
        by capacity with ``include_dropped`` (then: every time the router chose the expert)."""
        record = self.recording.layer(layer)
        _, _, experts = _valid(record, include_dropped)
        return np.bincount(experts, minlength=record.num_experts)

    load = renamed_method("expert_load", "load")

    def expert_load(self) -> pd.DataFrame:
        """One row per (layer, expert): ``count`` of processed assignments, ``dropped``
        assignments (chosen but over capacity), ``fraction`` of the layer's processed
        assignments, ``mean_gate`` (mean gate weight when processed), ``mean_prob`` (mean
        router probability over all tokens)."""
        frames = []
        for i, record in enumerate(self.recording.layers):
            rows, ranks, experts = _valid(record)
            E = record.num_experts
            count = np.bincount(experts, minlength=E)
            chosen = record.experts >= 0  # (n, k): elastic padding is -1
            dropped = np.bincount(record.experts[chosen & record.dropped], minlength=E)
            gate_sum = np.bincount(experts, weights=record.gates[rows, ranks], minlength=E)
            total = max(int(count.sum()), 1)
            mean_prob = record.probs.mean(axis=0) if len(record) else np.zeros(E)
            frames.append(
                pd.DataFrame(
                    {
                        "layer": record.name,
                        "layer_index": i,
                        "expert": np.arange(E),
                        "count": count,
                        "dropped": dropped,
                        "fraction": count / total,
                        "mean_gate": gate_sum / np.maximum(count, 1),
                        "mean_prob": mean_prob,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def load_matrix(self, value: str = "fraction") -> pd.DataFrame:
        """Layer x expert table of ``value`` (a :meth:`load` column: ``"count"``,
        ``"dropped"``, ``"fraction"``, ``"mean_gate"``, ``"mean_prob"``); NaN where a layer has
        fewer experts than the widest one."""
        allowed = ("count", "dropped", "fraction", "mean_gate", "mean_prob")
        if value not in allowed:
            raise MoEError(f"value must be one of {allowed}, got {value!r}")
        table = self.expert_load().pivot(index="layer", columns="expert", values=value)
        return table.reindex(self.layers).rename_axis(columns="expert")

    # ---- per sequence -------------------------------------------------------------------------
    def _example_rows(self, record: LayerRecord, example: int) -> np.ndarray:
        if not 0 <= example < self.recording.num_examples:
            raise MoEError(
                f"example must be in 0..{self.recording.num_examples - 1}, got {example}"
            )
        rows = np.flatnonzero(record.example == example)
        return rows[np.argsort(record.position[rows], kind="stable")]

    def token_expert(self, example: int, layer: int | str = 0) -> pd.DataFrame:
        """Position x expert gate weights of one sequence in one layer (0 where not chosen)."""
        record = self.recording.layer(layer)
        rows = self._example_rows(record, example)
        table = np.zeros((len(rows), record.num_experts))
        experts = record.experts[rows]
        keep = experts >= 0
        r = np.broadcast_to(np.arange(len(rows))[:, None], experts.shape)
        np.add.at(table, (r[keep], experts[keep]), record.gates[rows][keep])
        index = pd.MultiIndex.from_arrays(
            [record.position[rows], record.token[rows]], names=["position", "token"]
        )
        return pd.DataFrame(
            table, index=index, columns=pd.RangeIndex(record.num_experts, name="expert")
        )

    def sequence(self, example: int) -> pd.DataFrame:
        """Position x layer: for each token of one sequence, the best-ranked expert that
        processed it in every layer (-1: not routed there, e.g. dropped by capacity), with a
        ``token`` column first."""
        per_layer = [(r, self._example_rows(r, example)) for r in self.recording.layers]
        position = np.unique(np.concatenate([r.position[rows] for r, rows in per_layer]))
        token = np.full(len(position), -1, dtype=np.int64)
        columns: dict[str, np.ndarray] = {"token": token}
        for record, rows in per_layer:
            at = np.searchsorted(position, record.position[rows])
            token[at] = np.where(token[at] >= 0, token[at], record.token[rows])
            column = np.full(len(position), -1, dtype=np.int64)
            column[at] = _first_kept(record, rows)
            columns[record.name] = column
        return pd.DataFrame(columns, index=pd.Index(position, name="position"))

    def tokens(self, layer: int | str, expert: int, limit: int | None = None) -> pd.DataFrame:
        """The tokens routed to ``expert`` in ``layer``: ``example``, ``position``, ``token``,
        ``rank`` (0: first choice), ``gate``, ``dropped`` (over capacity) and every label;
        strongest gate first."""
        record = self.recording.layer(layer)
        if not 0 <= expert < record.num_experts:
            raise MoEError(
                f"expert must be in 0..{record.num_experts - 1} for layer {record.name!r}, got {expert}"
            )
        rows, ranks = np.nonzero(record.experts == expert)
        gate = record.gates[rows, ranks]
        order = np.argsort(-gate, kind="stable")[:limit]
        rows, ranks, gate = rows[order], ranks[order], gate[order]
        frame = pd.DataFrame(
            {
                "example": record.example[rows],
                "position": record.position[rows],
                "token": record.token[rows],
                "rank": ranks,
                "gate": gate,
                "dropped": record.dropped[rows, ranks],
            }
        )
        for name, values in self.recording.labels.items():
            frame[name] = values[record.example[rows]]
        return frame

    # ---- labels ---------------------------------------------------------------------------------
    def _label_codes(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        if label == "position":
            values = np.unique(np.concatenate([r.position for r in self.recording.layers]))
            return values, values
        if label not in self.recording.labels:
            raise MoEError(
                f"no label {label!r}; recorded labels: {[*self.recording.labels, 'position']}"
            )
        return np.unique(self.recording.labels[label], return_inverse=True)

    def by_label(
        self,
        label: str,
        layer: int | str | None = None,
        normalize: bool = True,
        first_choice: bool = False,
        include_dropped: bool = False,
    ) -> pd.DataFrame:
        """Label value x expert: share (or count) of each label's assignments per expert.

        Args:
            label: a recorded label name, or ``"position"``.
            layer: one layer; None sums all layers (they must have the same number of experts).
            normalize: rows sum to 1 (fractions) instead of counts.
            first_choice: count only each token's first-choice expert.
            include_dropped: also count assignments dropped by capacity (router choices).
        """
        values, codes = self._label_codes(label)
        records = self.recording.layers if layer is None else (self.recording.layer(layer),)
        widths = {r.num_experts for r in records}
        if len(widths) != 1:
            raise MoEError(
                f"layers have different numbers of experts {sorted(widths)}; pass layer="
            )
        E = widths.pop()
        table = np.zeros(len(values) * E)
        for record in records:
            rows, ranks, experts = _valid(record, include_dropped)
            if first_choice:
                rows, experts = rows[ranks == 0], experts[ranks == 0]
            token_code = (
                record.position[rows] if label == "position" else codes[record.example[rows]]
            )
            if label == "position":
                token_code = np.searchsorted(values, token_code)
            table += np.bincount(token_code * E + experts, minlength=len(values) * E)
        table = table.reshape(len(values), E)
        if normalize:
            table = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
        return pd.DataFrame(
            table, index=pd.Index(values, name=label), columns=pd.RangeIndex(E, name="expert")
        )

    def mutual_information(self, label: str, layer: int | str = 0) -> float:
        """Mutual information (nats) between a label and each token's first-choice expert."""
        record = self.recording.layer(layer)
        values, codes = self._label_codes(label)
        token_code = (
            np.searchsorted(values, record.position)
            if label == "position"
            else codes[record.example]
        )
        joint = np.bincount(
            token_code * record.num_experts + record.experts[:, 0],
            minlength=len(values) * record.num_experts,
        ).reshape(len(values), -1)
        p = joint / max(joint.sum(), 1)
        outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
        nz = p > 0
        return float((p[nz] * np.log(p[nz] / outer[nz])).sum())

    # ---- per-layer summaries ----------------------------------------------------------------------
    def entropy(self) -> pd.DataFrame:
        """Per layer: mean per-token router entropy, entropy of the load, both also divided by
        ``log(E)`` (1 = uniform)."""
        rows = []
        for record in self.recording.layers:
            counts = self.counts(record.name)
            load = counts / max(counts.sum(), 1)
            max_h = np.log(record.num_experts) if record.num_experts > 1 else 1.0
            token_h = float(_entropy(record.probs).mean()) if len(record) else 0.0
            load_h = float(_entropy(load))
            rows.append(
                {
                    "layer": record.name,
                    "router_entropy": token_h,
                    "router_entropy_norm": token_h / max_h,
                    "load_entropy": load_h,
                    "load_entropy_norm": load_h / max_h,
                }
            )
        return pd.DataFrame(rows)

    def balance(self) -> pd.DataFrame:
        """Per layer: coefficient of variation of expert counts, max/mean, min and max load
        fraction, unused experts, the load-balancing loss ``E * sum f_e P_e`` and
        ``dropped_fraction`` (share of assignments dropped by capacity)."""
        rows = []
        for record in self.recording.layers:
            counts = self.counts(record.name).astype(float)
            chosen = max(int((record.experts >= 0).sum()), 1)
            mean = counts.mean()
            f = counts / max(counts.sum(), 1)
            p = record.probs.mean(axis=0) if len(record) else np.zeros(record.num_experts)
            rows.append(
                {
                    "layer": record.name,
                    "experts": record.num_experts,
                    "cv": float(counts.std() / mean) if mean > 0 else 0.0,
                    "max_over_mean": float(counts.max() / mean) if mean > 0 else 0.0,
                    "min_fraction": float(f.min()),
                    "max_fraction": float(f.max()),
                    "unused": int((counts == 0).sum()),
                    "balance_loss": float(record.num_experts * (f * p).sum()),
                    "dropped_fraction": float(record.dropped.sum() / chosen),
                }
            )
        return pd.DataFrame(rows)

    def coactivation(self, layer: int | str = 0) -> pd.DataFrame:
        """Expert x expert: number of tokens that chose both (diagonal: tokens that chose each)."""
        record = self.recording.layer(layer)
        rows, _, experts = _valid(record)
        onehot = np.zeros((len(record), record.num_experts), dtype=np.float32)
        onehot[rows, experts] = 1.0
        co = (onehot.T @ onehot).astype(np.int64)  # (E, E)
        axis = pd.RangeIndex(record.num_experts, name="expert")
        return pd.DataFrame(co, index=axis, columns=axis.rename("with_expert"))

    def summary(self) -> pd.DataFrame:
        """:meth:`balance` and :meth:`entropy` side by side, one row per layer."""
        return self.balance().merge(self.entropy(), on="layer")

    def compare(self, other: RoutingStats, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
        """Load of two recordings side by side per (layer, expert): ``fraction_<a>``,
        ``fraction_<b>``, ``delta`` (b - a) and, per layer, ``tv_distance`` (total variation
        between the two load distributions). Layers or experts missing on one side count 0.
        :meth:`compare_layers` compares balance and entropy."""
        a, b = names
        left = self.expert_load()[["layer", "expert", "count", "fraction"]]
        right = other.expert_load()[["layer", "expert", "count", "fraction"]]
        table = left.merge(
            right, on=["layer", "expert"], how="outer", suffixes=(f"_{a}", f"_{b}")
        ).fillna(0.0)
        table["delta"] = table[f"fraction_{b}"] - table[f"fraction_{a}"]
        table["tv_distance"] = table.groupby("layer")["delta"].transform(
            lambda d: 0.5 * d.abs().sum()
        )
        order = {
            name: i
            for i, name in enumerate(
                self.layers + [n for n in other.layers if n not in self.layers]
            )
        }
        table = table.sort_values(
            ["layer", "expert"], key=lambda s: s.map(order) if s.name == "layer" else s
        )
        return table.reset_index(drop=True)

    def compare_layers(
        self, other: RoutingStats, names: tuple[str, str] = ("a", "b")
    ) -> pd.DataFrame:
        """Balance and entropy of two recordings side by side, one row per layer both have:
        for each :meth:`summary` figure ``<figure>_<a>``, ``<figure>_<b>`` and
        ``<figure>_delta`` (b - a), plus ``tv_distance`` between the two load distributions."""
        a, b = names
        if not set(self.layers) & set(other.layers):
            raise MoEError(
                f"the recordings share no layer: {self.layers} vs {other.layers}; compare "
                "recordings of the same model (or of a compressed copy of it)"
            )
        left, right = self.summary(), other.summary()
        figures = [c for c in left.columns if c not in ("layer", "experts")]
        table = left.merge(right, on="layer", suffixes=(f"_{a}", f"_{b}"))
        for figure in figures:
            table[f"{figure}_delta"] = table[f"{figure}_{b}"] - table[f"{figure}_{a}"]
        tv = self.compare(other, names).groupby("layer")["tv_distance"].first()
        table["tv_distance"] = table["layer"].map(tv)
        ordered = [f"{f}_{s}" for f in figures for s in (a, b, "delta")]
        return table[["layer", *ordered, "tv_distance"]]

    def load_without(self, layer: int | str, drop: list[int] | tuple[int, ...]) -> pd.DataFrame:
        """What-if load of one layer with experts ``drop`` removed: every recorded token re-routed
        to its top-k among the remaining experts (router renormalized over them).

        Returns one row per expert: ``fraction_before``, ``fraction_after`` (0 for dropped ones)
        and ``rerouted`` (share of tokens whose first choice changed). A capacity limit is not
        simulated: ``fraction_after`` counts every re-routed choice.
        """
        record = self.recording.layer(layer)
        E = record.num_experts
        gone = sorted({int(e) for e in drop})
        if not set(gone) <= set(range(E)) or len(gone) >= E:
            raise MoEError(
                f"drop must be a proper subset of experts 0..{E - 1} of layer {record.name!r}, got {list(drop)}"
            )
        probs = record.probs.copy()  # (n, E)
        probs[:, gone] = -1.0
        k = min(record.top_k, E - len(gone))
        chosen = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # (n, k)
        after = np.bincount(chosen.reshape(-1), minlength=E)
        before = self.counts(record.name)
        return pd.DataFrame(
            {
                "expert": np.arange(E),
                "fraction_before": before / max(before.sum(), 1),
                "fraction_after": after / max(after.sum(), 1),
                "rerouted": float((chosen[:, 0] != record.experts[:, 0]).mean())
                if len(record)
                else 0.0,
            }
        )
