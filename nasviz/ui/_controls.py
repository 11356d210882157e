"""Start / Pause / Resume / Stop buttons, a status line and an error box for any run."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

from nasviz.errors import ConfigError, RunError

__all__ = ["RunControls"]

BUTTONS = ("start", "pause", "resume", "stop")


class RunControls:
    """Controls bound to anything with the run interface (``start``, ``pause``, ``resume``,
    ``stop``, ``status``, ``error``, ``traceback``): a :class:`nasviz.Run`, a Search, a
    TrainingRun. Errors from a click are shown in the widget, never raised into the front end.

    Contract: :meth:`draw` is called from the owning view's throttled flush.
    """

    def __init__(self, run: Any, label: str, on_change: Any = None):
        self.run = run
        self.label = label
        self._on_change = on_change
        self.buttons = {
            name: W.Button(description=name.title(), layout=W.Layout(width="90px"))
            for name in BUTTONS
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _b, n=name: self.press(n))
        self.status_line = W.HTML()
        self.error_box = W.HTML()
        self.widget = W.VBox(
            [W.HBox(list(self.buttons.values())), self.status_line, self.error_box]
        )

    def press(self, button: str) -> None:
        """What clicking ``button`` does (also callable from code and tests)."""
        actions = {
            "start": self.run.start,
            "pause": self.run.pause,
            "resume": self.run.resume,
            "stop": lambda: self.run.stop(wait=False),
        }
        if button not in actions:
            raise ConfigError(f"unknown button {button!r}; buttons: {list(actions)}")
        try:
            actions[button]()
        except RunError as exc:
            self.error_box.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
        if self._on_change is not None:
            self._on_change()

    def draw(self, status: Any, extra: str = "") -> None:
        """Enables the buttons that make sense now and shows the status and any error."""
        state = status.state
        enabled = {
            "start": state in ("idle", "stopped"),
            "pause": state == "running",
            "resume": state == "paused",
            "stop": state in ("running", "paused"),
        }
        for name, button in self.buttons.items():
            button.disabled = not enabled[name]
        self.status_line.value = (
            f"<b>{html.escape(self.label)}</b> {html.escape(str(status))}{extra}"
        )
        error = self.run.error
        if error is not None:
            self.error_box.value = (
                f"<div style='color:#b00'><b>{html.escape(type(error).__name__)}</b>: {html.escape(str(error))}"
                f"<details><summary>traceback</summary><pre>{html.escape(self.run.traceback)}</pre></details></div>"
            )
