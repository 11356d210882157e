"""Widget update cost and kernel responsiveness while a search runs.

1. SearchDashboard update cost with 100, 1,000 and 10,000 points already drawn: Python time of
   one throttled update that adds 10 new points, and the bytes that update sends to the front
   end (counted at the widgets' comm). Compared side by side with the same update at 100.
2. Kernel responsiveness: round-trip time of a trivial cell in a real ipykernel while a
   4-worker search (ElasticCNN subnets, accuracy + MACs) runs with a dashboard attached,
   divided by the same with no search.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np

from bench._report import Figure
from nasviz import SearchSpace
from nasviz.search import Search
from nasviz.ui import SearchDashboard

SPACE = SearchSpace({f"x{i}": list(range(10)) for i in range(5)})


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


def _update_cost(n: int, new: int = 10, repeats: int = 7) -> tuple[float, float]:
    """(ms per update, bytes per update) for updates of ``new`` points after ``n`` are drawn."""
    search = Search(
        lambda a: {"loss": 0.0, "cost": 0.0},
        space=SPACE,
        objectives=[("loss", "minimize"), ("cost", "minimize")],
        budget=1,
        storage=":memory:",
    )
    dash = SearchDashboard(search)
    rows = _rows(n + new * repeats)
    dash._pending.extend(rows[:n])
    dash.throttle.flush_now()
    sent: list[int] = []
    for widget in (dash.pareto, dash.hv_fig, dash.controls.status_line):
        _counting(widget, sent)
    times, sizes = [], []
    for r in range(repeats):
        dash._pending.extend(rows[n + r * new : n + (r + 1) * new])
        before = sum(sent)
        t0 = time.perf_counter()
        dash.throttle.flush_now()
        times.append(time.perf_counter() - t0)
        sizes.append(sum(sent) - before)
    dash.close()
    return statistics.median(times) * 1e3, statistics.median(sizes)


KERNEL_SETUP = """
import torch, nasviz
from nasviz import accuracy, macs
from nasviz.search import Search
from nasviz.supernet import ElasticCNN
from nasviz.ui import SearchDashboard
torch.manual_seed(0)
data = nasviz.data.digits(seed=0)
net = ElasticCNN()
search = Search(net, objectives=[accuracy(data.val), macs((1, 1, 8, 8))], strategy="random", budget=5000,
                storage=":memory:", workers=4, seed=0)
dashboard = SearchDashboard(search)
display(dashboard)
"""


def _round_trips(client, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.execute_interactive("x = 1 + 1", timeout=60, output_hook=lambda msg: None)
        times.append(time.perf_counter() - t0)
    return times


def _responsiveness(n: int = 40) -> tuple[float, float, int]:
    from jupyter_client.manager import start_new_kernel

    km, client = start_new_kernel(kernel_name="python3")
    try:
        client.execute_interactive(KERNEL_SETUP, timeout=120, output_hook=lambda msg: None)
        idle = statistics.median(_round_trips(client, n))
        client.execute_interactive("search.start()", timeout=60, output_hook=lambda msg: None)
        time.sleep(2.0)  # workers busy
        busy = statistics.median(_round_trips(client, n))
        text: list[str] = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                text.append(msg["content"]["text"])

        client.execute_interactive(
            "search.stop(); print(search.status.done)", timeout=120, output_hook=hook
        )
        evaluated = int("".join(text).split()[0])
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
    return idle * 1e3, busy * 1e3, evaluated


def run() -> list[Figure]:
    figures = []
    _, base_bytes = _update_cost(100)
    for n in (100, 1_000, 10_000):
        ms, size = _update_cost(n)
        figures += [
            Figure(
                f"widgets.update_ms.{n}",
                ms,
                "ms",
                "one throttled update adding 10 points",
                "<= 20",
                ms <= 20,
            ),
            Figure(f"widgets.update_bytes.{n}", size, "bytes", "bytes sent by that update"),
            Figure(
                f"widgets.update_bytes_ratio.{n}",
                size / base_bytes,
                "x",
                f"the same update with 100 points drawn ({base_bytes:.0f} bytes)",
                "O(new points): <= 2",
                size / base_bytes <= 2,
            ),
        ]
    idle, busy, evaluated = _responsiveness()
    ratio = busy / idle
    figures += [
        Figure("widgets.cell_ms.idle", idle, "ms", "trivial cell round trip, no search"),
        Figure(
            "widgets.cell_ms.search",
            busy,
            "ms",
            f"same, 4-worker search running ({evaluated} evaluated)",
        ),
        Figure(
            "widgets.responsiveness_ratio",
            ratio,
            "x",
            "trivial cell latency with / without a running search",
            "<= 1.5",
            ratio <= 1.5,
        ),
    ]
    return figures
