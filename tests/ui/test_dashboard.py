"""SearchDashboard driven directly: buttons, live points, front, hypervolume, errors, throttle."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from ui_helpers import failing_sometimes, make_search, three_objectives

from nasviz import ConfigError
from nasviz.search import hypervolume
from nasviz.ui import SearchDashboard


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
    assert len(curve) == 30 and np.all(np.diff(curve) >= -1e-12)
    values = results[["loss", "cost"]].to_numpy()
    assert curve[-1] == pytest.approx(
        hypervolume(values, ["minimize", "minimize"], dash._reference)
    )
    assert "finished: 30/30" in dash.status_line.value
    assert (
        all(b.disabled for name, b in dash.buttons.items() if name != "start")
        and dash.buttons["start"].disabled
    )
    dash.close()


def test_points_stream_in_while_the_search_runs():
    gate = threading.Event()

    def slow(arch):
        gate.wait(10)
        return three_objectives(arch)

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
    assert dash.drawn_points == 12
    assert set(dash.pareto.data[0].x) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
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
    failed = int((search.results["state"] == "FAIL").sum())
    assert failed > 0 and f"{failed} failed" in dash.status_line.value
    assert dash.drawn_points == 30 - failed

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
    dash.set_reference([2.0, 2.0])
    values = search.results[["loss", "cost"]].to_numpy()
    assert dash.hypervolume_curve[-1] == pytest.approx(
        hypervolume(values, ["minimize", "minimize"], [2.0, 2.0])
    )
    assert "reference 2, 2" in dash.hv_fig.layout.title.text
    with pytest.raises(ConfigError, match="needs 2 finite values"):
        dash.set_reference([1.0])


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
    dash.points.chunk = 20  # small chunks, so 200 points span many of them
    sent = _bytes_sent(dash.pareto)
    sizes = []
    for k in range(0, 200, 10):  # replay 200 results in updates of 10 new points
        dash._pending.extend(rows[k : k + 10])
        before = sum(sent)
        dash.throttle.flush_now()
        sizes.append(sum(sent) - before)
    assert dash.drawn_points == 200
    # an update's size depends on new points and the front, not on all points drawn so far
    assert max(sizes[-5:]) < 3 * max(sizes[:5])


def test_title_counts_follow_the_search():
    search = make_search(fn=failing_sometimes, budget=20)
    dash = SearchDashboard(search)
    assert dash.pareto.layout.title.text.startswith("Pareto front — 0 evaluated")
    search.start().wait(30)
    dash.throttle.flush_now()
    failed = int((search.results["state"] == "FAIL").sum())
    expected = f"Pareto front — {20 - failed} evaluated, {len(search.pareto())} on the front, {failed} failed"
    assert dash.pareto.layout.title.text == expected
