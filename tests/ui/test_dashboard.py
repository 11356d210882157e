"""SearchDashboard driven directly: buttons, live points, front, hypervolume, errors, throttle."""

from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pytest
from ui_helpers import SPACE, failing_sometimes, gated, make_search, three_objectives

from nasviz import ConfigError
from nasviz.search import hypervolume
from nasviz.ui import SearchDashboard
from nasviz.ui._hypervolume import CHOOSE_AFTER
from nasviz.viz import reference_box


def test_dashboard_follows_a_search_to_the_end():
    search = make_search(budget=30)
    dash = SearchDashboard(search)
    assert dash.drawn_points == 0 and "idle" in dash.status_line.value
    assert [b.disabled for b in dash.buttons.values()] == [False, True, True, True]
    dash.press("start")
    search.wait(30)
    dash.throttle.flush_now()
    results = search.results
    assert dash.drawn_points == len(results) == 30
    assert sorted(dash.front_trials) == sorted(search.pareto()["trial"].tolist())
    curve = dash.hypervolume_curve
    assert len(curve) == 30 and np.all(np.diff(curve) >= -1e-12) and 0 < curve[-1] <= 1
    # the reference box was chosen once, from the first (at least CHOOSE_AFTER) points, and
    # then stayed: it is the box of some prefix of the results, not of all of them
    values = results[["loss", "cost"]].to_numpy()
    prefixes = [reference_box(values[:k], search.objectives) for k in range(CHOOSE_AFTER, 31)]
    assert any(
        np.array_equal(ideal, dash.hv.ideal) and np.array_equal(ref, dash.hv.reference)
        for ideal, ref in prefixes
    )
    directions = ["minimize", "minimize"]
    assert dash.hv.raw[-1] == pytest.approx(hypervolume(values, directions, dash.hv.reference))
    clipped = np.maximum(values, dash.hv.ideal)
    box = np.prod(dash.hv.reference - dash.hv.ideal)
    share = hypervolume(clipped, directions, dash.hv.reference) / box
    assert curve[-1] == pytest.approx(share)
    assert "share of the reference box" in dash.hv_title and "reference: loss" in dash.hv_title
    assert "finished: 30/30" in dash.status_line.value
    assert (
        all(b.disabled for name, b in dash.buttons.items() if name != "start")
        and dash.buttons["start"].disabled
    )
    dash.close()


def test_points_stream_in_while_the_search_runs():
    gate, slow = gated()
    search = make_search(fn=slow, budget=12, n_obj=3)
    dash = SearchDashboard(search, rate=50)
    assert dash.color_picker.value == "size"  # colour by the third objective
    search.start()
    gate.set()
    search.wait(30)
    time.sleep(0.2)  # let the throttle's last flush land
    dash.throttle.flush_now()
    assert dash.drawn_points == 12
    assert dash.throttle.flushes < 12 + 3  # coalesced, not one message per evaluation
    dash.x_picker.value = "size"  # axis change: a full redraw from the rows
    rows = search.results.set_index("trial")
    assert dash.drawn_points == 12
    trials = dash.points.values("customdata")
    assert dash.points.values("x") == rows.loc[trials, "size"].tolist()
    dash.y_picker.value = "cost"
    assert dash.points.values("y") == rows.loc[trials, "cost"].tolist()
    assert dash.figure.layout.yaxis.title.text.startswith("cost")
    dash.color_picker.value = "loss"
    assert dash.points.values("color") == rows.loc[trials, "loss"].tolist()
    assert dash.figure.layout.coloraxis.colorbar.title.text == "loss"
    dash.close()


def test_pause_resume_stop_buttons_drive_the_search():
    gate = threading.Semaphore(0)

    def gated(arch):
        assert gate.acquire(timeout=10)
        return three_objectives(arch)

    search = make_search(fn=gated, budget=20, n_obj=3)
    dash = SearchDashboard(search)
    dash.press("start")
    gate.release()
    dash.press("pause")
    assert search.status.state == "paused"
    dash.throttle.flush_now()
    assert not dash.buttons["resume"].disabled and dash.buttons["pause"].disabled
    dash.press("resume")
    assert search.status.state == "running"
    dash.press("stop")
    for _ in range(20):
        gate.release()
    search.wait(30)
    dash.throttle.flush_now()
    assert search.status.state == "stopped" and "stopped" in dash.status_line.value
    assert search.status.done < 20
    dash.press("pause")  # not allowed now: shown in the widget, not raised into the UI thread
    assert "cannot pause" in dash.error_box.value
    with pytest.raises(ConfigError, match="unknown button 'go'"):
        dash.press("go")
    dash.close()


def test_failures_are_counted_and_a_dead_search_shows_its_error():
    search = make_search(fn=failing_sometimes, budget=30)
    dash = SearchDashboard(search)
    search.start().wait(30)
    dash.throttle.flush_now()
    results = search.results
    failed = int((results["state"] == "FAIL").sum())
    assert failed > 0 and f"{failed} failed" in dash.status_line.value
    assert dash.drawn_points == 30 - failed
    # failed evaluations have no objective values: a visible note counts them, hover lists why
    (note,) = [a for a in dash.figure.layout.annotations if a.name == "failed"]
    assert note.visible and note.text == f"✕ {failed} failed"
    first = int(results.loc[results["state"] == "FAIL", "trial"].iloc[0])
    assert f"trial {first}: ValueError: x0 = 0 is broken" in note.hovertext

    def always(arch):
        raise RuntimeError("evaluation exploded")

    dead = make_search(fn=always, budget=5)
    dash2 = SearchDashboard(dead)
    dead.start().wait(30)
    dash2.throttle.flush_now()
    assert dead.status.state == "failed"
    assert "evaluation exploded" in dash2.error_box.value and "traceback" in dash2.error_box.value


def test_reference_point_is_editable():
    search = make_search(budget=20)
    search.start().wait(30)
    dash = SearchDashboard(search)  # built on a finished search: loads what is stored
    assert dash.drawn_points == 20
    values = search.results[["loss", "cost"]].to_numpy()
    ideal, ref = reference_box(values, search.objectives)
    assert [b.value for b in dash.reference_inputs] == list(ref)
    assert all(float(f"{v:.3g}") == v for v in ref)  # round numbers, never 8.2527881040
    dash.set_reference([2.0, 2.0])
    assert dash.hv.raw[-1] == pytest.approx(hypervolume(values, ["minimize", "minimize"], [2, 2]))
    assert "reference: loss 2, cost 2" in dash.hv_title
    with pytest.raises(ConfigError, match="needs 2 finite values"):
        dash.set_reference([1.0])
    with pytest.raises(ConfigError, match=r"worse than the best possible value.*\['loss'\]"):
        dash.set_reference([float(ideal[0]) - 1, 2.0])
    # through its controls: type the values, press the button
    dash.reference_inputs[0].value, dash.reference_inputs[1].value = 1.5, 3.0
    dash.reference_button.click()
    expected = hypervolume(values, ["minimize", "minimize"], [1.5, 3.0])
    assert dash.hv.raw[-1] == pytest.approx(expected)
    assert dash.hypervolume_curve[-1] == pytest.approx(
        expected / ((1.5 - ideal[0]) * (3.0 - ideal[1]))
    )
    assert "reference: loss 1.5, cost 3" in dash.hv_title and dash.reference_message.value == ""
    dash.reference_inputs[1].value = float("inf")
    dash.reference_button.click()  # shown in the widget, the curve unchanged
    assert "finite values" in dash.reference_message.value
    assert dash.hv.raw[-1] == pytest.approx(expected)


def _bytes_sent(widget):
    sent = []
    original = widget.comm.send

    def counting(data=None, metadata=None, buffers=None):
        sent.append(len(json.dumps(data, default=str)) + sum(len(b) for b in buffers or ()))
        return original(data=data, metadata=metadata, buffers=buffers)

    widget.comm.send = counting
    return sent


def test_update_messages_stay_bounded_as_points_accumulate():
    search = make_search(budget=200)
    search.start().wait(60)
    rows = search.results.to_dict("records")
    fresh = make_search(budget=1)
    dash = SearchDashboard(fresh)
    dash._repr_mimebundle_()  # displayed
    dash.points.chunk, dash.points.slots = 40, 4  # small, so 200 points seal many chunks
    sent = _bytes_sent(dash.figure)
    sizes = []
    for k in range(0, 200, 5):  # replay 200 results in updates of 5 new points
        dash._pending.extend(rows[k : k + 5])
        before = sum(sent)
        dash.throttle.flush_now()
        sizes.append(sum(sent) - before)
    assert dash.drawn_points == 200 and len(dash.points.traces) < 200 // 5
    assert dash.points.values("customdata") == [r["trial"] for r in rows]
    # an update's size depends on new points and what changed, not on all points drawn so far
    assert np.median(sizes[-10:]) < 1.5 * np.median(sizes[:10])
    assert max(sizes[-10:]) < 3 * max(sizes[:10])


def test_title_counts_follow_the_search():
    search = make_search(fn=failing_sometimes, budget=20)
    dash = SearchDashboard(search)
    assert dash.figure.layout.title.text.startswith("Pareto front — 0 evaluated")
    search.start().wait(30)
    dash.throttle.flush_now()
    failed = int((search.results["state"] == "FAIL").sum())
    expected = f"Pareto front — {20 - failed} evaluated, {len(search.pareto())} on the front, {failed} failed"
    assert dash.figure.layout.title.text == expected


def test_front_hover_shows_the_arch_and_infeasible_points_stay_visible():
    search = make_search(budget=40, constraints={"cost": 0.6})
    dash = SearchDashboard(search)
    dash._repr_mimebundle_()  # displayed
    search.start().wait(30)
    dash.throttle.flush_now()
    results = search.results.set_index("trial")
    infeasible = results.index[(results["state"] == "COMPLETE") & ~results["feasible"]].tolist()
    assert infeasible  # the constraint rejects some archs after evaluation
    assert dash.infeasible_series.values("customdata") == infeasible
    assert dash.infeasible_series.values("y") == results.loc[infeasible, "cost"].tolist()
    assert f"{len(infeasible)} infeasible" in dash.figure.layout.title.text
    front = dash.front_trials
    assert sorted(front) == sorted(search.pareto()["trial"])
    # hovering a front marker shows the evaluated point right under it (the front trace itself
    # is skipped by hover, so that a change of the front does not resend every hover text)
    assert dash.front_trace.hoverinfo == "skip" and dash.points.style["hoverinfo"] == "text"
    trials = dash.points.values("customdata")
    xy = zip(dash.points.values("x"), dash.points.values("y"), strict=True)
    place = dict(zip(trials, xy, strict=True))
    hover = dict(zip(trials, dash.points.values("hovertext"), strict=True))
    for trial, x, y in zip(front, dash.front_trace.x, dash.front_trace.y, strict=True):
        row = results.loc[trial]
        assert place[trial] == (x, y)
        assert hover[trial].startswith(f"trial {trial}<br>loss {row['loss']:.3g} · cost")
        assert all(f"{k}={row[k]}" in hover[trial] for k in ("x0", "x1", "x2"))
    dash.close()


def test_trials_stopped_early_show_where_they_stopped_with_their_rung():
    """Successive halving stops most trials at a rung: they are drawn (hollow, never on the
    front) at their last reported values, counted in the title and in the saved figure."""
    from nasviz.search import Search
    from nasviz.viz import dashboard_figure

    def trains(arch, report):
        for step in range(1, 10):
            loss = (5 - arch["x0"]) + 0.5 * (5 - arch["x1"]) + arch["x2"] * 0.1
            report(step, {"loss": loss + 8.0 / step, "cost": arch["x0"] ** 2 + arch["x1"]})
        return {"loss": loss + 8.0 / 9, "cost": arch["x0"] ** 2 + arch["x1"]}

    search = Search(trains, SPACE, objectives=[("loss", "minimize"), ("cost", "minimize")],
                    strategy="random", budget=18, storage=":memory:", seed=0, pruner="halving")  # fmt: skip
    dash = SearchDashboard(search)
    dash._repr_mimebundle_()  # displayed
    search.start().wait(60)
    dash.throttle.flush_now()
    results = search.results.set_index("trial")
    stopped = results.index[results["state"] == "PRUNED"].tolist()
    assert stopped  # halving stopped some
    assert dash.stopped_series.values("customdata") == stopped
    assert dash.stopped_series.values("y") == results.loc[stopped, "cost"].tolist()
    assert not set(stopped) & set(dash.front_trials)
    hover = dash.stopped_series.values("hovertext")[0]
    row = results.loc[stopped[0]]
    assert f"stopped early at step {int(row['step'])} (rung {int(row['rung'])})" in hover
    assert f"{len(stopped)} stopped early" in dash.figure.layout.title.text
    saved = dashboard_figure(search.results, search.objectives)
    traces = [t for t in saved.data if t.name == "stopped early"]
    assert len(traces) == 1 and sorted(traces[0].customdata) == sorted(stopped)
    assert f"{len(stopped)} stopped early" in saved.layout.title.text
    dash.close()


def test_predictor_panel_shows_tau_per_cycle_and_predictions():
    from nasviz.search._predictor import ridge_predictor

    search = make_search(
        budget=24,
        strategy="predictor",
        strategy_options={
            "batch_size": 6,
            "inner_steps": 200,
            "inner_population": 12,
            "predictor": ridge_predictor(),
            "cheap_samples": 0,
        },
    )
    dash = SearchDashboard(search)
    assert dash.predictor_traces == []  # no cycle yet
    search.start().wait(60)
    dash.throttle.flush_now()
    cycles = search.cycles
    assert len(cycles) >= 2
    traces = {t.name: t for t in dash.predictor_traces}
    for name in ("loss", "cost"):
        assert list(traces[f"{name} tau"].y) == pytest.approx(cycles[f"{name}_kendall_tau"])
        assert traces[f"{name} tau"].xaxis == "x3"
        measured = [v for batch in cycles[f"{name}_measured"] for v in batch]
        assert list(traces[name].x) == pytest.approx(measured) and traces[name].xaxis == "x4"
    dash.close()


def test_the_status_clock_ticks_while_an_evaluation_is_slow():
    gate, slow = gated()
    search = make_search(fn=slow, budget=2, n_obj=3)
    dash = SearchDashboard(search)
    dash.throttle.tick = 0.1
    search.start()
    time.sleep(0.3)
    before = dash.throttle.flushes
    time.sleep(1.2)  # no result arrives meanwhile
    assert dash.throttle.flushes >= before + 4
    assert re.search(r"running: 0/2 evaluations, 00:0[1-9] elapsed", dash.status_line.value)
    gate.set()
    search.wait(30)
    time.sleep(0.3)
    settled = dash.throttle.flushes
    time.sleep(0.5)
    assert dash.throttle.flushes == settled  # no ticking once the run has ended
    dash.close()


def test_a_search_that_runs_out_of_archs_says_so():
    """03's random baseline ended at 1554/2000 without a word: the space was exhausted."""
    search = make_search(budget=SPACE.size + 50)
    dash = SearchDashboard(search)
    search.start().wait(60)
    dash.throttle.flush_now()
    status = search.status
    assert status.state == "finished" and status.done == SPACE.size
    assert f"ended at {SPACE.size} of {SPACE.size + 50}" in dash.status_line.value
    assert "every distinct subnet of the space has been evaluated" in dash.status_line.value
    assert "every distinct subnet" in dash.static_figure().layout.title.text
    with pytest.warns(FutureWarning, match=r"SearchDashboard: pass rate=\.\.\. by keyword"):
        SearchDashboard(search, 5.0).close()
    dash.close()
