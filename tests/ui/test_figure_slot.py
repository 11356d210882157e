"""A figure whose front end never caught up is replaced (anywidget's 2 s load deadline).

The front end is simulated the way plotly's widget answers: a rendered view sends
``_js2py_traceDeltas`` with the id of the last trace edit it applied (on first render: the last
one its model knows of).
"""

from __future__ import annotations

import time

import pytest
from ui_helpers import make_search, three_objectives

from nasviz.ui import ParetoExplorer, SearchDashboard

GRACE = 0.2


def _ack(fig, edit_id):
    """What a rendered plotly view sends after applying (or first drawing) edit ``edit_id``."""
    fig._js2py_traceDeltas = {"trace_deltas": [], "trace_edit_id": edit_id}


def _wait(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def _live_dashboard():
    """A dashboard that followed a search: its points reached the figure as edits."""
    search = make_search(fn=three_objectives, budget=20, n_obj=3)
    dash = SearchDashboard(search)
    dash.slot.grace = GRACE
    dash._repr_mimebundle_()  # displayed: its figure widget exists from now on
    search.start().wait(60)
    dash.throttle.flush_now()
    return dash


@pytest.fixture(scope="module")
def finished():
    search = make_search(fn=three_objectives, budget=20, n_obj=3)
    search.start().wait(60)
    return search


def test_a_deaf_dashboard_figure_is_rebuilt_with_everything_drawn():
    dash = _live_dashboard()
    finished = dash.search
    old = dash.figure
    assert old._last_trace_edit_id > 0  # the kernel drew points after creating the widget
    _ack(old, 0)  # the view rendered, but its model never received those edits
    assert _wait(lambda: dash.figure is not old, timeout=15)
    _wait(lambda: dash.drawn_points == 20)
    assert dash.drawn_points == 20 and dash.slot.box.children == (dash.figure,)
    # the old figure's widget state was brought up to date when the run ended (page reloads)
    assert sum(len(t.get("x", ())) for t in old._widget_data) >= 20
    assert sorted(dash.front_trials) == sorted(finished.pareto()["trial"])
    assert len(dash.hypervolume_curve) == 20
    assert old.comm is not None and dash.slot.retired == [old]  # kept while the view lives
    # the new widget holds it all in its initial state: no edit needed to show it
    assert dash.figure._last_trace_edit_id == 0
    assert len(dash.figure._widget_data) == len(dash.figure.data)
    assert sum(len(t.get("x", ())) for t in dash.figure._widget_data) >= 20
    dash.close()


def test_a_view_makes_its_figure_widget_only_when_shown():
    search = make_search(fn=three_objectives, budget=20, n_obj=3)
    dash = SearchDashboard(search)
    search.start().wait(60)
    dash.throttle.flush_now()
    explorer = ParetoExplorer(search)
    explorer.sliders["cost"].value = explorer.sliders["cost"].min
    explorer.set_axes(x="size")
    assert not dash.slot.created and not explorer.slot.created  # no widget, no browser load
    assert not dash.slot.rendered and not dash.slot.deaf()
    bundle = dash._repr_mimebundle_()
    assert dash.slot.created and "application/vnd.jupyter.widget-view+json" in bundle
    assert dash.drawn_points == 20 and dash.figure._last_trace_edit_id == 0  # drawn at birth
    explorer.slot.box._view_count = 1  # shown inside another layout: its view reports in
    assert explorer.slot.created
    assert explorer.figure._last_trace_edit_id == 0 and explorer.figure.data[0].xaxis == "x"
    assert explorer.figure.layout.xaxis.title.text.startswith("size")
    star = explorer.figure.data[3]
    assert list(star.x) == [explorer.frame.loc[explorer.best, "size"]]
    dash.close()


def test_a_dashboard_built_on_a_finished_search_needs_no_edit(finished):
    dash = SearchDashboard(finished)
    fig = dash.figure
    assert fig._last_trace_edit_id == 0 and dash.drawn_points == 20
    dash.close()
    explorer = ParetoExplorer(finished)  # the same for the explorer, star included
    assert explorer.figure._last_trace_edit_id == 0 and explorer.best is not None
    assert explorer.figure._widget_data[3]["x"] == [explorer.frame.loc[explorer.best, "loss"]]


def test_a_healthy_figure_is_kept_and_a_later_silence_is_caught(finished):
    dash = SearchDashboard(finished)
    dash.slot.grace = GRACE
    fig = dash.figure
    _ack(fig, fig._last_trace_edit_id)  # rendered with everything applied
    time.sleep(3 * GRACE)
    assert dash.figure is fig and not dash.slot.deaf()
    dash.color_picker.value = "loss"  # new edits ...
    _ack(fig, fig._last_trace_edit_id)  # ... acknowledged in time
    time.sleep(3 * GRACE)
    assert dash.figure is fig
    dash.y_picker.value = "size"  # edits that are never acknowledged
    assert _wait(lambda: dash.figure is not fig)
    assert dash.slot.replacements == 1
    dash.close()


def test_without_a_front_end_nothing_is_replaced(finished):
    dash = SearchDashboard(finished)  # nobody renders it (papermill, tests): no answer ever
    dash.slot.grace = GRACE
    fig = dash.figure
    dash.x_picker.value = "size"
    time.sleep(3 * GRACE)
    assert dash.figure is fig and not dash.slot.deaf() and not dash.slot.rendered
    dash.close()


def test_replacements_are_bounded(finished):
    dash = SearchDashboard(finished)  # its run has ended: one more replacement is allowed
    dash.slot.grace, dash.slot.final_grace, dash.slot.max_replacements = GRACE, GRACE, 1
    for expected in (1, 2):
        fig = dash.figure
        dash.color_picker.value = "loss" if expected == 1 else "cost"  # edits ...
        _ack(fig, 0)  # ... that never arrive
        assert _wait(lambda fig=fig: dash.figure is not fig)
        assert dash.slot.replacements == expected
    fig = dash.figure
    dash.color_picker.value = "size"
    _ack(fig, 0)
    time.sleep(3 * GRACE)
    assert dash.figure is fig and dash.slot.deaf()  # given up: still deaf, not replaced again
    dash.close()


def test_a_deaf_explorer_figure_is_rebuilt_with_its_star_and_clicks(finished):
    explorer = ParetoExplorer(finished)
    explorer.slot.grace = GRACE
    old = explorer.figure
    explorer.sliders["cost"].value = explorer.sliders["cost"].min  # an edit: the star moves
    _ack(old, 0)
    assert _wait(lambda: explorer.figure is not old)
    fig = explorer.figure
    assert list(fig.data[3].x) == list(old.data[3].x) and explorer.best is not None
    assert list(fig.data[1].customdata) == list(old.data[1].customdata)
    from test_explorer import _click

    _click(explorer, 1, 0)  # the new figure's points are clickable
    assert explorer.selected == [int(fig.data[1].customdata[0])]


def test_a_figure_still_behind_when_its_run_ends_is_replaced_with_the_final_content():
    def slow(arch):
        time.sleep(0.01)
        return three_objectives(arch)

    search = make_search(fn=slow, budget=20, n_obj=3)
    dash = SearchDashboard(search)
    dash.slot.grace, dash.slot.final_grace, dash.slot.max_replacements = 100.0, 0.05, 0
    dash._repr_mimebundle_()
    first = dash.figure
    _ack(first, 0)  # rendered at once; then every update is lost (a front end never ready)
    search.start().wait(60)
    dash.throttle.flush_now()
    assert _wait(lambda: dash.figure is not first)
    assert dash.slot.replacements == 1  # one more than max_replacements, for the final figure
    _wait(lambda: dash.drawn_points == 20)
    assert dash.figure._last_trace_edit_id == 0 and dash.drawn_points == 20  # all at birth
    assert "20 evaluated" in dash.figure._widget_layout["title"]["text"]
    dash.close()


def test_the_deaf_clock_stops_while_a_cell_runs(monkeypatch):
    """The kernel answers the front end only between cells: no verdict while one runs."""
    from nasviz.ui import _figure

    dash = _live_dashboard()
    fig = dash.figure
    _ack(fig, 0)
    monkeypatch.setattr(_figure._cells, "running", True)
    time.sleep(4 * GRACE)
    assert dash.figure is fig and not dash.slot.deaf()
    _figure._cell_ended()  # the cell ended: the queued answers get their grace from now
    assert not dash.slot.deaf()
    assert _wait(lambda: dash.figure is not fig, timeout=15)  # none came: deaf after all
    dash.close()


def test_a_replaced_figure_stays_open_until_the_view_closes():
    """A slow view may still answer its last edits: closing the replaced widget would make the
    kernel log "No such comm" for each answer."""
    from nasviz.ui._figure import FigureSlot, PlotWidget

    slot = FigureSlot(lambda: PlotWidget())
    old = slot.figure
    slot.install(PlotWidget())
    assert old.comm is not None and slot.box.children == (slot.figure,)
    current = slot.figure
    slot.close()
    assert old.comm is None and current.comm is None


def test_plot_widget_takes_typed_arrays_reported_back_by_its_view():
    """A view reports the data it drew; numpy data comes back as a typed-array spec (a dict).
    plotly's own FigureWidget then fails with "The truth value of an array ... is ambiguous"
    (the errors a budget-slider drag logged); nasviz's PlotWidget keeps its data."""
    import numpy as np
    import plotly.graph_objects as go

    from nasviz.ui._figure import PlotWidget

    def report(fig):
        trace = fig.data[0]
        spec = {"dtype": "float64", "shape": [3], "value": np.arange(3.0).tobytes()}
        fig._js2py_traceDeltas = {
            "trace_deltas": [{"uid": trace.uid, "x": spec, "marker": {"color": "red"}}],
            "trace_edit_id": fig._last_trace_edit_id,
        }

    stock = go.FigureWidget(go.Scatter(x=np.arange(3.0), y=[1, 2, 3]))
    with pytest.raises(ValueError, match="truth value of an array"):
        report(stock)
    fig = PlotWidget(go.Scatter(x=np.arange(3.0), y=[1, 2, 3]))
    fig.data[0].x = np.arange(3.0) * 2  # a restyle after creation, as the views do
    report(fig)
    assert list(fig.data[0].x) == [0.0, 2.0, 4.0]


def test_a_view_behind_its_edits_holds_the_next_redraw():
    """While a rendered view has not caught up with the last edit, live views wait."""
    import threading

    gate = threading.Semaphore(0)

    def one_at_a_time(arch):
        assert gate.acquire(timeout=20)
        return three_objectives(arch)

    search = make_search(fn=one_at_a_time, budget=6, n_obj=3)
    dash = SearchDashboard(search, rate=1000)
    dash._repr_mimebundle_()
    fig = dash.figure
    _ack(fig, fig._last_trace_edit_id)
    search.start()
    gate.release()
    assert _wait(lambda: len(search.results) == 1)
    dash.throttle.flush_now()
    assert dash.drawn_points == 1 and dash.slot.behind()  # sent, not yet drawn by the view
    sent = fig._last_trace_edit_id
    gate.release()
    assert _wait(lambda: len(search.results) == 2)
    dash.throttle.flush_now()
    assert fig._last_trace_edit_id == sent and dash.drawn_points == 1  # held back
    _ack(fig, sent)  # the view caught up
    assert _wait(lambda: dash.drawn_points == 2)  # the held redraw follows
    for _ in range(4):
        gate.release()
    search.wait(60)
    dash.close()


def test_the_end_of_a_run_and_a_relayout_are_drawn_even_when_behind():
    search = make_search(fn=three_objectives, budget=12, n_obj=3)
    dash = SearchDashboard(search)
    dash._repr_mimebundle_()
    fig = dash.figure
    _ack(fig, fig._last_trace_edit_id)  # rendered, up to date
    assert _wait(lambda: not dash.slot.behind())  # after a rest as long as its drawing
    search.start().wait(60)
    dash.throttle.flush_now()  # the run's end is always drawn
    assert dash.drawn_points == 12 and dash.slot.behind()  # edits the view has not drawn yet
    sent = fig._last_trace_edit_id
    dash.color_picker.value = "loss"  # a relayout asked for by the user is drawn at once too
    assert fig._last_trace_edit_id > sent
    _ack(fig, fig._last_trace_edit_id)
    assert _wait(lambda: not dash.slot.behind())  # after a rest as long as its drawing
    dash.close()
