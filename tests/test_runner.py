"""The background-run mechanism every long job uses."""

from __future__ import annotations

import threading
import time

import pytest

from nasviz import Engine, Event, Run, RunError
from nasviz.errors import NasvizWarning
from nasviz.runner import BACKGROUND_NICE, Progress


class Counter(Engine):
    """Counts to ``total``; each step can be held on a gate so tests control the pace."""

    def __init__(self, total=5, fail_at=None, gated=False):
        self.total = total
        self.done = 0
        self.fail_at = fail_at
        self.gate = threading.Semaphore(0) if gated else None
        self.setups = 0
        self.teardowns: list[str] = []

    def setup(self):
        self.setups += 1

    def step(self):
        if self.gate is not None:
            assert self.gate.acquire(timeout=10), "test forgot to release a step"
        if self.done == self.fail_at:
            raise ValueError(f"boom at {self.done}")
        self.done += 1
        return Event("result", self.done)

    def finished(self):
        return self.done >= self.total

    def progress(self):
        return Progress(self.done, self.total, unit="item")

    def teardown(self, reason):
        self.teardowns.append(reason)


def test_start_returns_at_once_and_wait_finishes():
    engine = Counter(gated=True)
    run = Run(engine)
    seen = []
    run.subscribe(lambda e: seen.append(e))
    t0 = time.monotonic()
    run.start()
    assert time.monotonic() - t0 < 1.0
    assert run.state == "running"
    for _ in range(5):
        engine.gate.release()
    status = run.wait(timeout=10)
    assert status.state == "finished" and status.done == 5 and status.total == 5
    assert [e.data for e in seen if e.kind == "result"] == [1, 2, 3, 4, 5]
    assert [e.data.state for e in seen if e.kind == "status"][-1] == "finished"
    assert engine.teardowns == ["finished"]
    with pytest.raises(RunError, match="has finished"):
        run.start()


def test_stop_takes_effect_after_the_current_step_and_start_continues():
    engine = Counter(total=10, gated=True)
    run = Run(engine).start()
    engine.gate.release()
    engine.gate.release()
    while engine.done < 2:
        time.sleep(0.01)
    stopper = threading.Thread(target=run.stop)
    stopper.start()
    engine.gate.release()  # the step in progress completes, then the loop sees the stop
    stopper.join(10)
    assert run.state == "stopped"
    assert engine.done == 3 and engine.teardowns == ["stopped"]
    run.start()
    for _ in range(7):
        engine.gate.release()
    assert run.wait(10).state == "finished"
    assert engine.done == 10 and engine.setups == 2


def test_pause_holds_and_resume_continues():
    engine = Counter(total=4)
    gate = threading.Event()
    original = engine.step

    def slow_step():
        gate.wait(10)
        return original()

    engine.step = slow_step
    run = Run(engine).start()
    run.pause()
    assert run.state == "paused"
    gate.set()
    time.sleep(0.2)
    held = engine.done
    assert held <= 1  # the step that was running may finish; no further step starts
    time.sleep(0.2)
    assert engine.done == held
    run.resume()
    assert run.wait(10).state == "finished"
    with pytest.raises(RunError, match="only a running run pauses"):
        run.pause()
    with pytest.raises(RunError, match="only a paused run resumes"):
        run.resume()


def test_a_failing_engine_records_error_and_traceback():
    engine = Counter(total=5, fail_at=2)
    run = Run(engine)
    errors = []
    run.subscribe(lambda e: errors.append(e) if e.kind == "error" else None)
    status = run.start().wait(10)
    assert status.state == "failed"
    assert isinstance(run.error, ValueError) and "boom at 2" in str(run.error)
    assert "boom at 2" in run.traceback and "Traceback" in run.traceback
    assert "ValueError: boom at 2" in status.message
    assert len(errors) == 1 and errors[0].data["error"] is run.error
    assert engine.teardowns == ["failed"]


def test_a_broken_listener_warns_but_the_run_goes_on():
    run = Run(Counter(total=3))

    def broken(event):
        raise KeyError("listener bug")

    run.subscribe(broken)
    with pytest.warns(NasvizWarning, match="listener .* raised KeyError"):
        status = run.run()
    assert status.state == "finished" and status.done == 3


def test_unsubscribe_and_double_start():
    engine = Counter(total=3, gated=True)
    run = Run(engine)
    seen = []
    unsubscribe = run.subscribe(seen.append)
    unsubscribe()
    run.start()
    with pytest.raises(RunError, match="already running"):
        run.start()
    for _ in range(3):
        engine.gate.release()
    run.wait(10)
    assert seen == []


def test_status_text_and_eta():
    engine = Counter(total=4, gated=True)
    run = Run(engine).start()
    engine.gate.release()
    while engine.done < 1:
        time.sleep(0.01)
    status = run.status
    assert status.active and status.eta is not None and status.eta >= 0
    assert str(status).startswith("running: 1/4 items")
    for _ in range(3):
        engine.gate.release()
    final = run.wait(10)
    assert final.eta is None and "finished: 4/4 items" in str(final)


def test_wait_from_a_listener_is_refused():
    run = Run(Counter(total=1))
    caught = []

    def listener(event):
        try:
            run.wait(0)
        except RunError as exc:
            caught.append(exc)

    run.subscribe(listener)
    run.start().wait(10)
    assert caught and "own thread" in str(caught[0])


def test_wait_with_progress_bar(capsys):
    run = Run(Counter(total=3)).start()
    assert run.wait(10, progress=True).state == "finished"
    assert "3/3" in capsys.readouterr().err


def test_background_runs_and_their_workers_yield_the_cpu_to_the_kernel():
    import os

    seen = {}

    class Probe(Counter):
        def step(self):
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            return super().step()

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    Run(Probe(total=1)).start().wait(10)
    assert seen["nice"] == BACKGROUND_NICE  # the run's own thread
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # not the caller's
    Run(Probe(total=2)).run()  # run() in the caller's thread leaves its priority alone
    assert seen["nice"] == before


def test_background_runs_are_in_the_idle_scheduling_class_and_the_caller_is_not():
    import os

    seen = {}

    class Probe(Counter):
        def step(self):
            seen["policy"] = os.sched_getscheduler(0)
            return super().step()

    before = os.sched_getscheduler(0)
    Run(Probe(total=1)).start().wait(10)
    assert seen["policy"] == os.SCHED_IDLE  # a waking kernel thread preempts it at once
    assert os.sched_getscheduler(0) == before != os.SCHED_IDLE
    Run(Probe(total=2)).run()
    assert seen["policy"] == before
