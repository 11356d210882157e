"""SupernetBuilder: choose a supernet family and its elastic choices with controls."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as W

from nasviz.errors import ConfigError, NasvizError
from nasviz.objectives import count_macs
from nasviz.ui._base import View
from nasviz.viz._compat import keyword_only_after

__all__ = ["SupernetBuilder"]

# family -> elastic choices: name -> (options offered, default selection)
CHOICES: dict[str, dict[str, tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "ElasticMLP": {
        "widths": ((16, 32, 64, 128, 256), (32, 64, 128)),
        "depths": ((1, 2, 3, 4, 5), (1, 2, 3)),
    },
    "ElasticCNN": {
        "kernels": ((3, 5, 7), (3, 5, 7)),
        "expands": ((2, 3, 4, 6), (3, 4, 6)),
        "depths": ((1, 2, 3, 4), (2, 3, 4)),
    },
    "ElasticTransformer": {
        "layers": ((1, 2, 3, 4), (1, 2, 3)),
        "heads": ((1, 2, 4, 8), (1, 2, 4)),
        "ffn_widths": ((32, 64, 128, 256, 512), (64, 128, 256)),
        "experts": ((2, 4, 8), (2, 4)),
        "top_ks": ((1, 2), (1, 2)),
    },
}


def _input_shape(family: str, data: Mapping[str, int]) -> tuple[int, ...]:
    if family == "ElasticMLP":
        return (1, data["in_features"])
    if family == "ElasticCNN":
        return (1, data["in_channels"], data["input_size"], data["input_size"])
    return (1, data["seq_len"])


class SupernetBuilder(View):
    """Controls for a family and its elastic choices; shows the space size and the smallest and
    largest subnet's parameters and MACs as you change them; "Build" makes ``.net`` / ``.space``.

    Args:
        family: the initial family.
        data: data-dependent sizes: ``in_features``, ``in_channels``, ``input_size``,
            ``num_classes``, ``vocab_size``, ``seq_len`` (defaults fit ``nasviz.data.digits()``
            and ``nasviz.data.tasks()``).
    """

    @keyword_only_after("data")
    def __init__(self, family: str = "ElasticCNN", *, data: Mapping[str, int] | None = None):
        if family not in CHOICES:
            raise ConfigError(f"unknown family {family!r}; families: {list(CHOICES)}")
        self.data = {
            "in_features": 64,
            "in_channels": 1,
            "input_size": 8,
            "num_classes": 10,
            "vocab_size": 53,
            "seq_len": 16,
            "tasks_classes": 2,
            **(data or {}),
        }
        self.net: Any = None
        self.space: Any = None
        self.facts: dict[str, int] | None = None
        self.family_picker = W.ToggleButtons(options=list(CHOICES), value=family)
        self.family_picker.observe(lambda _c: self._rebuild_controls(), names="value")
        self.controls: dict[str, W.SelectMultiple] = {}
        self.moe = W.Checkbox(value=False, description="mixture-of-experts FFN")
        self.moe.observe(lambda _c: self.update(), names="value")
        self.controls_box = W.HBox([])
        self.summary = W.HTML()
        self.build_button = W.Button(description="Build", button_style="primary")
        self.build_button.on_click(lambda _b: self._build_clicked())
        self.message = W.HTML()
        self.widget = W.VBox(
            [
                self.family_picker,
                self.controls_box,
                self.summary,
                W.HBox([self.build_button, self.message]),
            ]
        )
        self._rebuild_controls()

    def _rebuild_controls(self) -> None:
        family = self.family_picker.value
        self.controls = {}
        for name, (options, default) in CHOICES[family].items():
            box = W.SelectMultiple(
                options=options,
                value=default,
                description=name,
                rows=len(options),
                layout=W.Layout(width="190px"),
                style={"description_width": "80px"},
            )
            box.observe(lambda _c: self.update(), names="value")
            self.controls[name] = box
        extra = [self.moe] if family == "ElasticTransformer" else []
        self.controls_box.children = [*self.controls.values(), *extra]
        self.update()

    def choices(self) -> dict[str, Any]:
        """The constructor arguments the controls describe."""
        family = self.family_picker.value
        kwargs: dict[str, Any] = {name: tuple(box.value) for name, box in self.controls.items()}
        d = self.data
        if family == "ElasticMLP":
            kwargs.update(in_features=d["in_features"], num_classes=d["num_classes"])
        elif family == "ElasticCNN":
            kwargs.update(
                in_channels=d["in_channels"],
                num_classes=d["num_classes"],
                input_size=d["input_size"],
            )
        else:
            kwargs.update(
                vocab_size=d["vocab_size"],
                seq_len=d["seq_len"],
                num_classes=d["tasks_classes"],
                moe=self.moe.value,
            )
            if not self.moe.value:
                kwargs.pop("experts"), kwargs.pop("top_ks")
        return kwargs

    def make(self) -> Any:
        """A new supernet from the current choices (raises a nasviz error for empty choices)."""
        import nasviz.supernet as supernet

        empty = [name for name, box in self.controls.items() if not box.value]
        if empty and not (
            self.family_picker.value == "ElasticTransformer"
            and not self.moe.value
            and set(empty) <= {"experts", "top_ks"}
        ):
            raise ConfigError(f"choose at least one value for {empty}")
        return getattr(supernet, self.family_picker.value)(**self.choices())

    def describe(self, net: Any) -> dict[str, int]:
        """Space size and the smallest/largest subnet's parameters and MACs."""
        shape = _input_shape(self.family_picker.value, self.data)
        small, large = net.space.smallest(), net.space.largest()
        return {
            "size": net.space.size,
            "params_min": net.count_params(small),
            "params_max": net.count_params(large),
            "macs_min": count_macs(net, shape, small),
            "macs_max": count_macs(net, shape, large),
        }

    def update(self) -> dict[str, int] | None:
        """Recomputes the summary for the current choices."""
        try:
            facts = self.describe(self.make())
        except NasvizError as exc:
            self.summary.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            self.build_button.disabled = True
            self.facts = None
            return None
        self.build_button.disabled = False
        self.summary.value = (
            f"<b>{facts['size']:,}</b> subnets · params {facts['params_min']:,} – {facts['params_max']:,}"
            f" · MACs {facts['macs_min']:,} – {facts['macs_max']:,}"
        )
        self.facts = facts
        return facts

    def _build_clicked(self) -> None:
        try:
            self.build()
        except NasvizError as exc:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"

    def build(self) -> Any:
        """Builds the supernet: available as ``builder.net`` (and its space as ``builder.space``)."""
        self.net = self.make()
        self.space = self.net.space
        self.message.value = (
            f"built <code>{type(self.net).__name__}</code>: <code>builder.net</code>"
        )
        return self.net

    def __repr__(self) -> str:
        return f"SupernetBuilder({self.family_picker.value}, {self.summary.value!r})"
