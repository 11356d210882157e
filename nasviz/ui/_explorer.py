"""ParetoExplorer: browse a search's results, click a point, act on that subnet in the kernel."""

from __future__ import annotations

import html
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nasviz.errors import ConfigError, check_real
from nasviz.objectives import Objective, measure_latency
from nasviz.search import pareto_mask
from nasviz.space import SearchSpace
from nasviz.ui._arch import ArchView
from nasviz.ui._base import View
from nasviz.ui._figure import FigureSlot, PlotWidget
from nasviz.viz import pareto_info, pareto_plot
from nasviz.viz._compat import keyword_only_after
from nasviz.viz._format import axis_title, format_frame, format_value, unit_of
from nasviz.viz._pareto import arch_columns, objective_specs
from nasviz.viz._style import point_style, star_style

__all__ = ["ParetoExplorer"]

MAX_PINNED = 4
#: Marker opacity of points outside the budgets (the front's and the others').
OUTSIDE_BUDGET = 0.12
NO_COLOR = "(none)"


def _storage_folder(results: Any) -> Path:
    """Where a search keeps its files: its journal's (or SQLite file's) folder, else the
    current folder."""
    name = str(getattr(results, "storage_name", "") or "")
    if name.startswith("sqlite:///"):
        name = name.removeprefix("sqlite:///")
    elif "://" in name or name in ("", ":memory:") or not name.endswith((".journal", ".db")):
        return Path.cwd()
    return Path(name).resolve().parent


def _readout(name: str) -> str:
    """A slider's readout format: SI prefixes for counts (``23.8k``), else 4 digits."""
    return ".3s" if unit_of(name)[1] else ".4g"


class ParetoExplorer(View):
    """Click a point (or lasso several) to see its arch and metrics and to act on it.

    Actions run in the kernel: measure the subnet's real latency now, export it (to
    ``explorer.exported`` and to a file), pin it for side-by-side comparison (up to 4). With a
    hardware ``profile``, "Check front on hardware" measures every front arch for real under the
    profile's conditions (:func:`~nasviz.hardware.check_latency`): the details show predicted
    vs measured latency, and the archs within the latency bound on paper but over it in
    reality are crossed out on the scatter and named in a warning. Budget
    sliders on each minimized objective filter the front (points over budget fade, the table
    keeps the front archs within budget) and mark the best arch within budget with a star (best
    on the first maximized objective, else the first objective) without re-evaluating. With 3+
    objectives, pickers choose the axes and the colour.

    Args:
        results: a :class:`nasviz.search.Search` or a results DataFrame (``Search.results``,
            or one read back from CSV/parquet).
        objectives: needed with a DataFrame: Objectives or ``(name, direction)`` pairs.
        net: the supernet, for the ArchView, latency and export actions.
        space: the space, when there is no supernet (for the ArchView).
        latency_input: input shape with batch for the latency action, e.g. ``(1, 1, 8, 8)``.
        profile: a :class:`~nasviz.hardware.HardwareProfile` of ``net``, for the front check.
        latency_bound: the latency bound (ms) the check flags violations of; None takes the
            search's constraint on ``latency_objective`` (if any).
        latency_objective: the results column holding the predicted latency (absent: the
            check predicts with the profile's table).
        out_dir: where Export writes ``subnet-trial<N>.pt`` (default: the folder of the
            search's journal, else the current folder).
    """

    @keyword_only_after("net", "space", "latency_input")
    def __init__(
        self,
        results: Any,
        objectives: Sequence[Objective | tuple[str, str]] | None = None,
        *,
        net: Any = None,
        space: SearchSpace | None = None,
        latency_input: tuple[int, ...] | None = None,
        profile: Any = None,
        latency_bound: float | None = None,
        latency_objective: str = "latency_table",
        out_dir: str | Path | None = None,
    ):
        if isinstance(results, pd.DataFrame):
            if objectives is None:
                raise ConfigError(
                    "ParetoExplorer(results_frame) needs objectives=[(name, direction), ...]"
                )
            frame = results
        elif hasattr(results, "results") and hasattr(results, "objectives"):
            frame = results.results
            objectives = objectives or results.objectives
            net = net if net is not None else getattr(results, "net", None)
            space = space or getattr(results, "space", None)
        else:
            raise ConfigError(
                f"ParetoExplorer takes a Search or a results DataFrame, got {type(results).__name__}"
            )
        self.objectives = objective_specs(objectives)
        self.out_dir = Path(out_dir) if out_dir is not None else _storage_folder(results)
        self.net = net
        self.space = space if space is not None else getattr(net, "space", None)
        self.latency_input = latency_input
        if profile is not None and not hasattr(profile, "blocks"):
            raise ConfigError(
                f"profile must be a nasviz.hardware.HardwareProfile, got {type(profile).__name__}"
            )
        self.profile = profile
        self.latency_objective = latency_objective
        if latency_bound is None and not isinstance(results, pd.DataFrame):
            latency_bound = getattr(results, "bounds", {}).get(latency_objective)
        self.latency_bound = (
            None if latency_bound is None else check_real("latency_bound (ms)", latency_bound)
        )
        #: check_latency's rows for the front (indexed by trial), after :meth:`check_front`
        self.latency_check: pd.DataFrame | None = None
        self._results = frame
        self.info = pareto_info(frame, self.objectives)
        self.frame = (
            frame.set_index("trial", drop=False)
            if "trial" in frame
            else frame.assign(trial=frame.index)
        )
        self._arch_cols = arch_columns(frame, self.objectives)
        self.selected: list[int] = []
        self.pinned: list[int] = []
        self.measured: dict[int, float] = {}
        self.exported: Any = None
        self.exported_path: Path | None = None
        self.best: int | None = None
        self._lock = threading.RLock()  # the figure may be rebuilt from a timer thread
        self._syncing = False
        self._build()

    # ---- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        names = [o.name for o in self.objectives]
        self.x_picker = W.Dropdown(options=names, value=self.info.x, description="x")
        self.y_picker = W.Dropdown(options=names, value=self.info.y, description="y")
        self.color_picker = W.Dropdown(
            options=[NO_COLOR, *names], value=self.info.color or NO_COLOR, description="colour"
        )
        for picker in (self.x_picker, self.y_picker, self.color_picker):
            picker.observe(self._picked, names="value")
        self.details = W.HTML("<i>click a point to inspect it</i>")
        self.arch_box = W.VBox([])
        self.action_out = W.HTML()
        self.path_box = W.Text(
            value=str(self.out_dir / "subnet.pt"),
            description="file",
            layout=W.Layout(width="420px"),
            style={"description_width": "initial"},
        )
        self.buttons = {
            name: W.Button(description=label)
            for name, label in (
                ("latency", "Measure latency"),
                ("check", "Check front on hardware"),
                ("export", "Export"),
                ("pin", "Pin"),
                ("unpin", "Unpin all"),
            )
        }
        self.buttons["latency"].on_click(lambda _b: self._act(self.measure_latency))
        self.buttons["check"].on_click(lambda _b: self._act(self.check_front))
        self.buttons["check"].layout.display = None if self.profile is not None else "none"
        self.check_out = W.HTML()
        self.buttons["export"].on_click(
            lambda _b: self._act(lambda: self.export(self.path_box.value))
        )
        self.buttons["pin"].on_click(lambda _b: self._act(self.pin))
        self.buttons["unpin"].on_click(lambda _b: self._act(self.unpin_all))
        self.pinned_box = W.HTML()
        self.sliders = self._make_sliders()
        self.slot = FigureSlot(self._new_figure, on_deaf=self._rebuild_figure)
        self.budget_out = W.HTML()
        self.sort_picker = W.Dropdown(
            options=[*names, "trial"], value=names[0], description="sort by"
        )
        self.sort_desc = W.Checkbox(
            value=self.objectives[0].direction == "maximize", description="descending"
        )
        for w in (self.sort_picker, self.sort_desc):
            w.observe(lambda _c: self._draw_table(), names="value")
        self.table = W.HTML()
        pickers = [W.HBox([self.x_picker, self.y_picker, self.color_picker])]
        actions = W.VBox(
            [
                W.HBox([self.buttons["latency"], self.buttons["pin"], self.buttons["unpin"]]),
                W.HBox([self.path_box, self.buttons["export"]]),
                W.HBox([self.buttons["check"]]),
                self.action_out,
            ]
        )
        self.widget = W.VBox(
            [
                *(pickers if len(names) > 2 else []),
                self.slot.box,
                W.HBox(
                    [W.VBox([self.details, self.arch_box], layout=W.Layout(width="60%")), actions]
                ),
                self.pinned_box,
                self.check_out,
                W.VBox(list(self.sliders.values())),
                self.budget_out,
                W.HBox([self.sort_picker, self.sort_desc]),
                self.table,
            ]
        )
        self.apply_budgets()

    def _make_sliders(self) -> dict[str, W.FloatSlider]:
        sliders = {}
        for o in self.objectives:
            if o.direction != "minimize" or len(self.info.trials) == 0:
                continue
            values = self.frame.loc[self.info.trials, o.name].to_numpy(dtype=np.float64)
            lo, hi = float(values.min()), float(values.max())
            slider = W.FloatSlider(
                value=hi,
                min=lo,
                max=hi if hi > lo else lo + 1.0,
                step=(hi - lo) / 200 if hi > lo else 1.0,
                description=f"{axis_title(o.name).split(' (')[0]} ≤",
                continuous_update=True,
                readout_format=_readout(o.name),
                layout=W.Layout(width="460px"),
                style={"description_width": "120px"},
            )
            slider.observe(lambda _c: self.apply_budgets(), names="value")
            sliders[o.name] = slider
        return sliders

    # ---- the figure ----------------------------------------------------------------------------
    @property
    def figure(self) -> go.FigureWidget:
        """The scatter: trace 0 dominated points, 1 the front, 2 infeasible points (outside
        the search's constraints), 3 the star on the best arch within the budgets, 4 crosses on
        the front archs over the latency bound in reality (after :meth:`check_front`)."""
        return self.slot.figure

    def _materialize(self) -> None:
        self.slot.figure  # noqa: B018 - made when the view is first displayed

    def _new_figure(self) -> go.FigureWidget:
        """A figure widget with the points, the budgets' fading and the star in its *initial*
        state (so that even a front end that misses every later message shows them)."""
        widget = PlotWidget(self._drawn())
        for trace in widget.data[:3]:
            trace.on_click(self._on_click)
            trace.on_selection(self._on_selection)
        return widget

    def _drawn(self) -> go.Figure:
        """The scatter with the budgets' fading and the star (what the widget starts from, and
        the static figure of a saved notebook)."""
        fig = pareto_plot(self.info, title="Pareto explorer")
        fig.add_scatter(**star_style(), x=[], y=[])
        fig.add_scatter(
            mode="markers",
            name="over the latency bound in reality",
            x=[],
            y=[],
            hoverinfo="skip",
            marker={"symbol": "x-thin-open", "size": 22, "color": "black", "line": {"width": 3}},
        )
        self._draw_budgets(fig)
        return fig

    def _rebuild_figure(self) -> None:
        """A new figure widget in place of one whose front end is deaf (see ``_figure``)."""
        with self._lock:
            self.slot.install(self._new_figure())

    def _picked(self, _change: Any = None) -> None:
        if not self._syncing:
            self.set_axes(self.x_picker.value, self.y_picker.value, self.color_picker.value)

    def set_axes(
        self, x: str | None = None, y: str | None = None, color: str | None = None
    ) -> None:
        """Shows other objectives on the axes, or as the colour (``"(none)"``: no colour)."""
        color = color or self.info.color or NO_COLOR
        info = pareto_info(
            self._results,
            self.objectives,
            x=x or self.info.x,
            y=y or self.info.y,
            color=None if color == NO_COLOR else color,
            auto_color=False,
        )
        with self._lock:
            self.info = info
            self._syncing = True
            try:
                self.x_picker.value, self.y_picker.value = info.x, info.y
                self.color_picker.value = info.color or NO_COLOR
            finally:
                self._syncing = False
            if not self.slot.created:  # made with these axes when first shown
                self.apply_budgets()
                return
            drawn = pareto_plot(info, title="Pareto explorer")
            fig = self.figure
            with fig.batch_update():
                for target, source in zip(fig.data[:3], drawn.data, strict=True):
                    for prop in ("x", "y", "customdata", "hovertext", "marker", "line"):
                        if prop in source:
                            target[prop] = source[prop]
                fig.layout.title.text = drawn.layout.title.text
                for axis in ("xaxis", "yaxis"):
                    fig.layout[axis].title.text = drawn.layout[axis].title.text
                    fig.layout[axis].tickformat = drawn.layout[axis].tickformat
                fig.layout.coloraxis = drawn.layout.coloraxis
            self.apply_budgets()

    # ---- selection ---------------------------------------------------------------------------
    def _on_click(self, trace: Any, points: Any, _state: Any) -> None:
        if points.point_inds:
            self.select([int(trace.customdata[i]) for i in points.point_inds[:1]])

    def _on_selection(self, trace: Any, points: Any, _selector: Any) -> None:
        if points.point_inds:
            self.select([int(trace.customdata[i]) for i in points.point_inds])

    def select(self, trials: Sequence[int]) -> None:
        """Shows the given trials (one: its ArchView and metrics; several: a table)."""
        unknown = [t for t in trials if t not in self.frame.index]
        if unknown:
            raise ConfigError(f"trial(s) {unknown} are not in the results")
        self.selected = list(dict.fromkeys(int(t) for t in trials))
        if len(self.selected) == 1:
            self.path_box.value = str(self.out_dir / f"subnet-trial{self.selected[0]}.pt")
            row = self.frame.loc[self.selected[0]]
            self.details.value = self._metrics_html(row)
            if self.space is not None:
                arch = {c: _plain(row[c]) for c in self.space.names}
                bits = callable(getattr(self.net, "bits_of", None))  # QuantSupernet: a bit strip
                self.arch_box.children = [
                    ArchView(
                        arch, self.net if bits else self.space, title=f"trial {self.selected[0]}"
                    ).widget
                ]
            else:
                self.arch_box.children = []
        else:
            rows = self.frame.loc[self.selected, ["trial", *[o.name for o in self.objectives]]]
            self.details.value = f"<b>{len(rows)} selected</b>" + self._table_html(rows)
            self.arch_box.children = []

    def selected_arch(self) -> dict[str, Any]:
        """The arch of the one selected trial."""
        if len(self.selected) != 1:
            raise ConfigError(f"select exactly one point first (selected: {self.selected})")
        row = self.frame.loc[self.selected[0]]
        cols = self.space.names if self.space is not None else self._arch_cols
        return {c: _plain(row[c]) for c in cols}

    def _table_html(self, frame: pd.DataFrame, index: bool = False) -> str:
        """An HTML table with the objectives written readably (units, SI prefixes)."""
        names = [o.name for o in self.objectives if o.name in frame.columns]
        return format_frame(frame, names).to_html(index=index, border=0)

    def _metrics_html(self, row: pd.Series) -> str:
        metrics = "".join(
            f"<tr><td>{html.escape(o.name)}</td>"
            f"<td>{html.escape(format_value(o.name, row[o.name], digits=4))}</td></tr>"
            for o in self.objectives
        )
        trial = int(row["trial"])
        check = self.latency_check
        if check is not None and trial in check.index:
            line = check.loc[trial]
            predicted = format_value("latency", line["predicted_ms"])
            measured = format_value("latency", line["measured_ms"])
            metrics += (
                f"<tr><td>latency predicted / measured</td><td>{predicted} / {measured} "
                f"({line['error_pct']:+.1f}%)</td></tr>"
            )
            if line["violated"]:
                bound = format_value("latency", line["bound_ms"])
                metrics += (
                    f"<tr><td colspan=2 style='color:#b00'>&#9888; within the {bound} bound on "
                    "paper, over it in reality</td></tr>"
                )
        elif trial in self.measured:
            measured = format_value("latency", self.measured[trial])
            metrics += f"<tr><td>latency (measured)</td><td>{measured}</td></tr>"
        arch = ", ".join(f"{c}={row[c]}" for c in self._arch_cols)
        return f"<b>trial {trial}</b><table>{metrics}</table><code>{html.escape(arch)}</code>"

    # ---- actions (run in the kernel) ---------------------------------------------------------
    def _act(self, action: Any) -> None:
        try:
            message = action()
        except Exception as exc:  # shown in the widget, not lost in a log
            message = f"<span style='color:#b00'>{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>"
        self.action_out.value = message or ""

    def _require_net(self, what: str) -> Any:
        if self.net is None or not hasattr(self.net, "export"):
            raise ConfigError(f"{what} needs the supernet: ParetoExplorer(results, net=supernet)")
        return self.net

    def measure_latency(self) -> str:
        """Times the selected subnet's exported model now (median ms)."""
        net = self._require_net("measuring latency")
        if self.latency_input is None:
            raise ConfigError(
                "measuring latency needs latency_input=(batch, ...) when building the explorer"
            )
        arch = self.selected_arch()
        m = measure_latency(net.export(arch), self.latency_input)
        trial = self.selected[0]
        self.measured[trial] = m.median_ms
        self.details.value = self._metrics_html(self.frame.loc[trial])
        median = format_value("latency", m.median_ms)
        return f"trial {trial}: {median} median ({m.repeats} runs, {m.threads} threads)"

    def check_front(self, repeats: int | None = None, seed: int = 0) -> str:
        """Measures every front arch for real under the profile's conditions (runtime, input,
        threads; ``repeats``: None takes the profile's) and shows predicted vs measured: in the
        details, as a table under the actions, and as crosses on the archs within the latency
        bound on paper but over it in reality. Returns the summary (the check's rows are in
        :attr:`latency_check`)."""
        from nasviz.hardware import check_latency

        if self.profile is None:
            raise ConfigError("checking the front needs ParetoExplorer(..., profile=profile)")
        net = self._require_net("checking the front")
        front = self.front(within_budget=False).set_index("trial", drop=False)
        check = check_latency(
            front,
            net,
            self.profile,
            bound=self.latency_bound,
            objective=self.latency_objective,
            repeats=repeats,
            seed=seed,
        )
        with self._lock:
            self.latency_check = check
            self.measured.update(check["measured_ms"].to_dict())
            if self.slot.created:
                self._draw_budgets(self.figure)
            if len(self.selected) == 1:
                self.details.value = self._metrics_html(self.frame.loc[self.selected[0]])
        return self._draw_check(check)

    def violated(self) -> list[int]:
        """The front trials within the latency bound on paper but over it in reality (after
        :meth:`check_front`; else none)."""
        if self.latency_check is None:
            return []
        return [int(t) for t in self.latency_check.index[self.latency_check["violated"]]]

    def _draw_check(self, check: pd.DataFrame) -> str:
        errors = check["error_pct"].abs()
        summary = (
            f"measured {len(check)} front archs on {html.escape(str(self.profile.machine))} "
            f"({html.escape(self.profile.runtime)}): prediction error median "
            f"{errors.median():.1f}%, max {errors.max():.1f}%"
        )
        bad = self.violated()
        if bad:
            bound = format_value("latency", self.latency_bound)
            summary += (
                f"<br><span style='color:#b00'>&#9888; {len(bad)} within the {bound} bound on "
                f"paper are over it in reality: trial(s) {', '.join(map(str, bad))}</span>"
            )
        table = check[["trial", "predicted_ms", "measured_ms", "error_pct", "violated"]].copy()
        table["error_pct"] = table["error_pct"].map(lambda v: f"{v:+.1f}%")
        for column in ("predicted_ms", "measured_ms"):
            table[column] = table[column].map(lambda v: format_value("latency", v))
        self.check_out.value = (
            "<b>front on hardware</b>: " + summary + table.to_html(index=False, border=0)
        )
        return summary

    def export(self, path: str | Path | None = None) -> str:
        """Exports the selected subnet to ``self.exported`` and, with a path, to a file (a
        relative path is taken in :attr:`out_dir`); the message names the file written."""
        from nasviz.supernet import save_subnet

        net = self._require_net("exporting")
        arch = self.selected_arch()
        self.exported = net.export(arch)
        if path:
            target = Path(path)
            if not target.is_absolute() and target.parent == Path():
                target = self.out_dir / target
            target.parent.mkdir(parents=True, exist_ok=True)
            save_subnet(net, arch, target)
            self.exported_path = target.resolve()
            return (
                f"exported trial {self.selected[0]} to <code>explorer.exported</code> and "
                f"<code>{html.escape(str(self.exported_path))}</code>"
            )
        return f"exported trial {self.selected[0]} to <code>explorer.exported</code>"

    def pin(self) -> str:
        """Pins the selected trial(s) for side-by-side comparison (at most 4)."""
        if not self.selected:
            raise ConfigError("select a point to pin")
        new = [t for t in self.selected if t not in self.pinned]
        if len(self.pinned) + len(new) > MAX_PINNED:
            raise ConfigError(
                f"at most {MAX_PINNED} pinned; unpin some first (pinned: {self.pinned})"
            )
        self.pinned += new
        self._draw_pinned()
        return f"pinned {new}"

    def unpin_all(self) -> str:
        self.pinned = []
        self._draw_pinned()
        return "unpinned all"

    def _draw_pinned(self) -> None:
        if not self.pinned:
            self.pinned_box.value = ""
            return
        cols = [o.name for o in self.objectives] + self._arch_cols
        table = format_frame(self.frame.loc[self.pinned, cols], [o.name for o in self.objectives])
        table = table.T
        table.columns = [f"trial {t}" for t in self.pinned]
        self.pinned_box.value = "<b>pinned</b>" + table.to_html(border=0)

    # ---- budgets and table -------------------------------------------------------------------
    def budgets(self) -> dict[str, float]:
        return {name: float(s.value) for name, s in self.sliders.items()}

    def within_budget(self, trials: Sequence[int] | np.ndarray) -> np.ndarray:
        """Whether each trial fits every budget slider (bool array)."""
        rows = self.frame.loc[list(trials)]
        fits = np.ones(len(rows), dtype=bool)
        for name, bound in self.budgets().items():
            fits &= rows[name].to_numpy(dtype=np.float64) <= bound + 1e-12
        return fits

    def apply_budgets(self) -> int | None:
        """Fades the points over budget, filters the table, stars the best arch within budget;
        returns its trial (or None when nothing fits)."""
        with self._lock:
            ok = self.info.trials[self.within_budget(self.info.trials)]
            quality = self._quality()
            self.best = self._best(ok, quality)
            if self.slot.created:  # else the figure is made with them when first shown
                self._draw_budgets(self.figure)
            self._draw_budget_text(ok, quality)
            self._draw_table()
            return self.best

    def _best(self, ok: np.ndarray, quality: Objective) -> int | None:
        if not ok.size:
            return None
        values = self.frame.loc[ok, quality.name]
        return int(values.idxmax() if quality.direction == "maximize" else values.idxmin())

    def _quality(self) -> Objective:
        """The objective the best arch within budget is best on."""
        return next((o for o in self.objectives if o.direction == "maximize"), self.objectives[0])

    def _draw_budgets(self, fig: go.Figure) -> None:
        """Fades the points over budget and moves the star to :attr:`best`."""
        with fig.batch_update():
            dominated = point_style(self.info.color)["marker"]["opacity"]
            for trace, base in ((fig.data[0], dominated), (fig.data[1], 1.0)):
                fits = self.within_budget(_trials(trace))
                trace.marker.opacity = np.where(fits, base, OUTSIDE_BUDGET).tolist()
            star = fig.data[3]
            if self.best is None:
                star.x, star.y = [], []
            else:
                row = self.frame.loc[self.best]
                star.x, star.y = [row[self.info.x]], [row[self.info.y]]
            rows = self.frame.loc[self.violated()]
            fig.data[4].x, fig.data[4].y = rows[self.info.x].tolist(), rows[self.info.y].tolist()

    def _draw_budget_text(self, ok: np.ndarray, quality: Objective) -> None:
        if self.best is None:
            self.budget_out.value = "<i>no evaluated arch fits these budgets</i>"
            return
        values = self.frame.loc[ok, [o.name for o in self.objectives]].to_numpy(dtype=np.float64)
        on_front = int(pareto_mask(values, [o.direction for o in self.objectives]).sum())
        best = format_value(quality.name, self.frame.loc[self.best, quality.name], digits=4)
        self.budget_out.value = (
            f"<b>best within budget</b>: trial {self.best} ({quality.name} {best}); "
            f"{len(ok)} archs fit, {on_front} of them non-dominated"
        )

    def front(self, within_budget: bool = True) -> pd.DataFrame:
        """The front's rows (those within the budgets, unless ``within_budget=False``), sorted
        as the table shows them."""
        trials = self.info.trials[self.info.front]
        if within_budget:
            trials = trials[self.within_budget(trials)]
        table = self.frame.loc[
            trials, ["trial", *[o.name for o in self.objectives], *self._arch_cols]
        ]
        return table.sort_values(
            self.sort_picker.value, ascending=not self.sort_desc.value, kind="stable"
        )

    def _draw_table(self) -> None:
        front = self.front()
        total = int(self.info.front.sum())
        self.table.value = (
            f"<b>Pareto front</b>: {len(front)} of {total} archs within budget"
            + self._table_html(front)
        )

    def static_figure(self) -> go.Figure:
        return self._drawn()

    def __repr__(self) -> str:
        return f"ParetoExplorer({len(self.info.trials)} points, {int(self.info.front.sum())} on the front)"


def _trials(trace: Any) -> list[int]:
    """The trial numbers a trace's points carry (its ``customdata``)."""
    return [] if trace.customdata is None else [int(t) for t in trace.customdata]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (archs are JSON values)."""
    return value.item() if isinstance(value, np.generic) else value
