"""Widget update cost and kernel responsiveness while a search runs.

1. SearchDashboard update cost with 100, 1,000 and 10,000 points already drawn: Python time of
   one throttled update that adds 10 new points (median and p90 of 32 updates, after 16 that
   create the buffer traces new points go to), and the bytes the update sends to the front end
   (counted at the widgets' comms), as a ratio to the bytes of the 10 new points themselves
   (x, y, trial, hover text as JSON). Averaged over the 32 updates, since every 16th seals the
   buffered points into a chunk (see ``nasviz.ui._live``).
2. Kernel responsiveness: round-trip time of a trivial cell in a real ipykernel while a
   4-worker search runs with a dashboard attached, divided by the same with the search paused.
   Idle and busy blocks are interleaved, so load from other processes hits both alike. Three
   searches: ElasticCNN subnets with accuracy + MACs (the headline figure), accuracy + params,
   and a fast plain function whose results stream in quickly (the throttled update path).
3. What responsiveness costs the search: archs per second a 4-worker ElasticCNN search
   (accuracy + MACs) evaluates with nasviz's kernel-friendly settings (supernet evaluations
   capped at one per CPU core, background threads in the idle scheduling class) divided by the
   same search without them, in interleaved windows.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time

import numpy as np

from bench._report import Figure
from nasviz import SearchSpace
from nasviz.search import Search
from nasviz.ui import SearchDashboard

SPACE = SearchSpace({f"x{i}": list(range(10)) for i in range(5)})
NEW = 10  # points per update


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n):
        arch = {k: int(v) for k, v in zip(SPACE.names, rng.integers(0, 10, 5), strict=True)}
        a, b = rng.random(2)
        rows.append(
            {
                "trial": t,
                "state": "COMPLETE",
                **arch,
                "loss": float(a),
                "cost": float(1 - a**0.5 + 0.3 * b),
                "feasible": True,
                "error": "",
                "traceback": "",
                "duration": 0.01,
                "worker": "w",
            }
        )
    return rows


def _counting(widget, sink: list[int]) -> None:
    original = widget.comm.send

    def send(data=None, metadata=None, buffers=None):
        sink.append(len(json.dumps(data, default=str)) + sum(len(b) for b in buffers or ()))
        return original(data=data, metadata=metadata, buffers=buffers)

    widget.comm.send = send


def _point_bytes(dash: SearchDashboard, rows: list[dict]) -> int:
    """JSON size of the points themselves: what any update adding them must send."""
    from nasviz.viz._pareto import hover_text

    cols = dash._arch_cols or []
    payload = {
        "x": [r["loss"] for r in rows],
        "y": [r["cost"] for r in rows],
        "customdata": [r["trial"] for r in rows],
        "hovertext": [hover_text(r, cols, dash.objectives) for r in rows],
    }
    return len(json.dumps(payload))


def _update_cost(n: int, repeats: int = 32, warmup: int = 16) -> dict[str, float]:
    """Time and bytes of updates adding ``NEW`` points each after ``n`` are drawn (and
    ``warmup`` updates more, which create the buffer traces new points go to)."""
    search = Search(
        lambda a: {"loss": 0.0, "cost": 0.0},
        space=SPACE,
        objectives=[("loss", "minimize"), ("cost", "minimize")],
        budget=1,
        storage=":memory:",
    )
    dash = SearchDashboard(search)
    rows = _rows(n + NEW * (warmup + repeats))
    dash._pending.extend(rows[:n])
    dash.throttle.flush_now()
    for r in range(warmup):
        dash._pending.extend(rows[n + r * NEW : n + (r + 1) * NEW])
        dash.throttle.flush_now()
    n += warmup * NEW
    sent: list[int] = []
    for widget in (dash.figure, *dash.reference_inputs, dash.controls.status_line):
        _counting(widget, sent)
    times, sizes, ratios = [], [], []
    for r in range(repeats):
        new = rows[n + r * NEW : n + (r + 1) * NEW]
        dash._pending.extend(new)
        before = sum(sent)
        t0 = time.perf_counter()
        dash.throttle.flush_now()
        times.append(time.perf_counter() - t0)
        sizes.append(sum(sent) - before)
        ratios.append(sizes[-1] / _point_bytes(dash, new))
    dash.close()
    return {
        "ms": statistics.median(times) * 1e3,
        "ms_p90": float(np.percentile(times, 90)) * 1e3,
        "bytes": statistics.mean(sizes),
        "ratio": statistics.mean(ratios),
        "ratio_max": max(ratios),
    }


KERNEL_SETUP = """
import sys, time, torch, nasviz
from nasviz import SearchSpace, accuracy, macs, params
from nasviz.search import Search
from nasviz.supernet import ElasticCNN
from nasviz.ui import SearchDashboard
torch.manual_seed(0)
data = nasviz.data.digits(seed=0)
net = ElasticCNN()
def fast(arch):
    v = [arch[k] for k in sorted(arch)]
    return {"loss": sum(v) / 45.0, "cost": 1.0 - (v[0] / 9.0) ** 0.5 + 0.01 * v[1]}
searches = {
    "cnn_macs": Search(net, objectives=[accuracy(data.val), macs((1, 1, 8, 8))],
                       strategy="random", budget=100000, storage=":memory:", workers=4, seed=0),
    "cnn_params": Search(net, objectives=[accuracy(data.val), params()],
                         strategy="random", budget=100000, storage=":memory:", workers=4, seed=1),
    "fast_fn": Search(fast, space=SearchSpace({f"x{i}": list(range(10)) for i in range(5)}),
                      objectives=[("loss", "minimize"), ("cost", "minimize")],
                      strategy="random", budget=100000, storage=":memory:", workers=4, seed=2),
}
dashboards = {name: SearchDashboard(s) for name, s in searches.items()}
for d in dashboards.values():
    display(d)
"""

CASES = {
    "cnn_macs": "ElasticCNN, accuracy + MACs",
    "cnn_params": "ElasticCNN, accuracy + params",
    "fast_fn": "a fast plain function (results stream in)",
}


def _run(client, code: str) -> str:
    text: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            text.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            text.append("\n".join(msg["content"]["traceback"]))

    client.execute_interactive(code, timeout=120, output_hook=hook)
    return "".join(text)


def _round_trips(client, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.execute_interactive("x = 1 + 1", timeout=60, output_hook=lambda msg: None)
        times.append(time.perf_counter() - t0)
    return times


def _responsiveness(client, case: str, rounds: int = 10, n: int = 10) -> dict[str, list]:
    """Interleaved blocks of round trips per round: idle (search paused), then busy. Returns
    every sample per condition and the median of the per-round ratios of block medians."""
    out: dict[str, list] = {"idle": [], "busy": []}
    paired: list[float] = []
    _run(client, f"s = searches[{case!r}]; s.start(); time.sleep(1.0); s.pause()")
    for _ in range(rounds):
        time.sleep(0.8)  # evaluations in flight finish
        idle = _round_trips(client, n)
        out["idle"] += idle
        _run(client, "s.resume(); time.sleep(0.5)")
        busy = _round_trips(client, n)
        out["busy"] += busy
        paired.append(statistics.median(busy) / statistics.median(idle))
        _run(client, "s.pause()")
    done = _run(client, "s.stop(); print(s.status.done)")
    out["evaluated"] = [float(done.split()[0])]
    out["paired"] = [statistics.median(paired)]
    return out


def _kernel_figures() -> list[Figure]:
    from jupyter_client.manager import start_new_kernel

    km, client = start_new_kernel(kernel_name="python3")
    figures = []
    try:
        _run(client, KERNEL_SETUP)
        for case, label in CASES.items():
            got = _responsiveness(client, case)
            idle, busy = (statistics.median(got[k]) for k in ("idle", "busy"))
            idle90, busy90 = (float(np.percentile(got[k], 90)) for k in ("idle", "busy"))
            ratio = busy / idle
            headline = case == "cnn_macs"
            suffix = "" if headline else f".{case}"
            figures += [
                Figure(
                    f"widgets.cell_ms.idle{suffix}",
                    idle * 1e3,
                    "ms",
                    f"trivial cell, search paused ({label}), median; p90 {idle90 * 1e3:.1f} ms",
                ),
                Figure(
                    f"widgets.cell_ms.search{suffix}",
                    busy * 1e3,
                    "ms",
                    f"same, 4-worker search running ({int(got['evaluated'][0])} evaluated), median; p90 {busy90 * 1e3:.1f} ms",
                ),
                Figure(
                    f"widgets.responsiveness_ratio{suffix}",
                    ratio,
                    "x",
                    f"{label}: trivial cell latency with / without the search running (medians of"
                    f" {len(got['busy'])} interleaved samples each; median of per-round ratios"
                    f" {got['paired'][0]:.2f})",
                    "<= 1.5" if headline else "",
                    ratio <= 1.5 if headline else None,
                ),
                Figure(
                    f"widgets.responsiveness_ratio_p90{suffix}",
                    busy90 / idle90,
                    "x",
                    f"{label}: the same with p90s",
                ),
            ]
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
    return figures


@contextlib.contextmanager
def _without_kernel_friendly_settings():
    """Lifts the cap on supernet evaluations computing at once and leaves background threads at
    normal priority (patching the names the search reads at run time), then restores both."""
    import nasviz.runner as runner
    import nasviz.search._engine as engine
    import nasviz.search._evaluate as evaluate

    for module, name in ((runner, "lower_thread_priority"), (engine, "lower_thread_priority")):
        if not callable(getattr(module, name, None)):
            raise RuntimeError(f"{module.__name__}.{name} is gone: update this benchmark")
    if not isinstance(getattr(evaluate, "COMPUTE_SLOTS", None), threading.BoundedSemaphore):
        raise RuntimeError("nasviz.search._evaluate.COMPUTE_SLOTS is gone: update this benchmark")
    saved = runner.lower_thread_priority, engine.lower_thread_priority, evaluate.COMPUTE_SLOTS
    runner.lower_thread_priority = engine.lower_thread_priority = lambda *a, **k: False
    evaluate.COMPUTE_SLOTS = threading.BoundedSemaphore(1024)
    try:
        yield
    finally:
        runner.lower_thread_priority, engine.lower_thread_priority, evaluate.COMPUTE_SLOTS = saved


def _archs_per_second(net, data, seed: int, seconds: float) -> float:
    """Archs per second a 4-worker random search of ``net`` (accuracy + MACs) evaluates in a
    window of ``seconds`` after a second of warm-up."""
    from nasviz import accuracy, macs

    search = Search(
        net,
        objectives=[accuracy(data.val), macs((1, 1, 8, 8))],
        strategy="random",
        budget=100_000,
        storage=":memory:",
        workers=4,
        seed=seed,
    )
    search.start()
    try:
        time.sleep(1.0)
        done0, t0 = search.status.done, time.perf_counter()
        time.sleep(seconds)
        done1, t1 = search.status.done, time.perf_counter()
    finally:
        search.stop()
    return (done1 - done0) / (t1 - t0)


def _throughput_figures(rounds: int = 6, seconds: float = 4.0) -> list[Figure]:
    import torch

    import nasviz
    from nasviz.supernet import ElasticCNN

    torch.manual_seed(0)
    data, net = nasviz.data.digits(seed=0), ElasticCNN().eval()
    rates: dict[str, list[float]] = {"friendly": [], "plain": []}
    ratios = []
    for r in range(rounds):  # interleaved, the order alternating
        pair = {}
        for kind in ("friendly", "plain") if r % 2 == 0 else ("plain", "friendly"):
            with (
                contextlib.nullcontext()
                if kind == "friendly"
                else _without_kernel_friendly_settings()
            ):
                pair[kind] = _archs_per_second(net, data, 10 * r + len(pair), seconds)
            rates[kind].append(pair[kind])
        ratios.append(pair["friendly"] / pair["plain"])
    ratio = statistics.median(ratios)
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    friendly, plain = (statistics.median(rates[k]) for k in ("friendly", "plain"))
    return [
        Figure(
            "widgets.search_throughput_ratio",
            ratio,
            "x",
            f"archs/s of a 4-worker ElasticCNN search (accuracy + MACs) with evaluations capped "
            f"at one per core and background threads in the idle class / without either; median "
            f"of {rounds} interleaved pairs of {seconds:g} s windows (quartiles {q1:.2f}-{q3:.2f})",
            ">= 0.9",
            ratio >= 0.9,
        ),
        Figure(
            "widgets.search_archs_per_s",
            friendly,
            "archs/s",
            f"the same search with nasviz's settings, median ({plain:.1f} without them)",
        ),
    ]


def run() -> list[Figure]:
    figures = _throughput_figures()
    for n in (100, 1_000, 10_000):
        got = _update_cost(n)
        figures += [
            Figure(
                f"widgets.update_ms.{n}",
                got["ms"],
                "ms",
                f"one throttled update adding {NEW} points to {n} (median; p90 {got['ms_p90']:.1f} ms)",
                "<= 20",
                got["ms"] <= 20,
            ),
            Figure(
                f"widgets.update_bytes.{n}",
                got["bytes"],
                "bytes",
                "bytes sent by that update (mean)",
            ),
            Figure(
                f"widgets.update_bytes_ratio.{n}",
                got["ratio"],
                "x",
                f"bytes sent / bytes of the {NEW} new points (mean; max {got['ratio_max']:.1f})",
                "O(new points): <= 5 at every n",
                got["ratio"] <= 5,
            ),
        ]
    return figures + _kernel_figures()
