"""Hardware benchmarks: how well latency tables and the learned predictor predict measured
latency, how fast they predict, and ONNX Runtime against eager PyTorch.

For ElasticCNN (batch 16 of 8x8 images) and ElasticTransformer (batch 16 of 32 tokens), on
eager PyTorch and on ONNX Runtime (CPU): a :class:`~nasviz.hardware.HardwareProfile` times every
block choice and, in the same interleaved session, the smallest, the largest, ``TRAIN`` random
and ``HELD_OUT`` other random subnets whole. The first ``TRAIN + 2`` calibrate
(``HardwareProfile.with_samples``: the table's fixed part, the learned predictor's training
set); the held-out ones are the truth the predictions are checked against, measured in the
same session so that the error is the predictor's and not the machine's drift between sessions.
That drift is reported beside it: the held-out subnets timed again in a second session right
after the first (no target; on this shared 2-core VM it has ranged from 5% to over 20%, which
no table measured at another time can follow). Reported: the mean absolute percentage error
(MAPE) of the table and of the learned predictor on the held-out subnets (target <= 5%), the
drift, the time to predict 10,000 archs (target <= 50 ms), and the median over the held-out
subnets of onnxruntime / eager latency (no target).

Timing method (a shared, loaded machine): one intra-op thread everywhere (torch and the ONNX
Runtime session, which then computes in the calling thread); every measurement is interleaved,
``ROUNDS`` rounds each visiting every entry once in a new random order (so drifts of the
machine's load spread over all entries), and each entry's figure is the median of all its timed
forwards. With ``CLOCK = "thread"`` (the default here) a forward is timed by the CPU time of the
measuring thread (``time.thread_time``) instead of the wall clock: on a machine with more
runnable threads than cores, a whole subnet's forward (tens of ms) is preempted within nearly
every call while a single block's (about 1 ms) mostly is not, so wall-clock medians inflate
subnets against their blocks by the machine's load, not by anything a table could know (1.6x
at a load of 10 on 2 cores). Set ``CLOCK = "wall"`` on a quiet machine. Each visit is also
normalized by a reference kernel timed with it (``HardwareProfile.measure``'s default, see
``nasviz/hardware/_reference.py``), and the second session too; the drift figure's detail says
how far the table rescaled to the second session's reference
(``HardwareProfile.rescaled``) is from that session. The onnxruntime/eager
ratio compares two such interleaved sets of the same subnets measured one after the other,
not pairs.

Run: ``.venv/bin/python -m bench hardware`` (ONNX exports dominate: tens of minutes on 2 cores).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from bench._report import Figure
from nasviz import objectives
from nasviz.hardware import HardwareProfile, LatencyPredictor
from nasviz.hardware._interleave import measure_interleaved
from nasviz.supernet import ElasticCNN, ElasticTransformer

SEED = 0
TRAIN = 30  # whole subnets timed with the profile (fixed part, learned predictor)
HELD_OUT = 50
REPEATS, WARMUP, ROUNDS = 6, 2, 10
PREDICT_N = 10_000
RUNTIMES = ("eager", "onnxruntime")
CLOCK = "thread"  # "thread": CPU time of the measuring thread; "wall": time.perf_counter


def _cnn() -> tuple[ElasticCNN, tuple[int, ...]]:
    torch.manual_seed(SEED)
    return ElasticCNN().eval(), (16, 1, 8, 8)


def _transformer() -> tuple[ElasticTransformer, tuple[int, ...]]:
    torch.manual_seed(SEED)
    return ElasticTransformer(64, 32, 4).eval(), (16, 32)


FAMILIES: dict[str, Callable[[], tuple[object, tuple[int, ...]]]] = {
    "cnn": _cnn,
    "transformer": _transformer,
}


def _mape(predicted: np.ndarray, measured: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - measured) / measured) * 100)


def _log(text: str) -> None:
    print(f"   {text}", flush=True)


def _case(family: str, runtime: str) -> tuple[list[Figure], dict, HardwareProfile]:
    net, shape = FAMILIES[family]()
    t0 = time.perf_counter()
    settings = {
        "runtime": runtime,
        "threads": 1,
        "repeats": REPEATS,
        "warmup": WARMUP,
        "rounds": ROUNDS,
        "samples": TRAIN + HELD_OUT,
        "seed": SEED,
    }
    session = HardwareProfile.measure(net, shape, **settings)
    profiled = time.perf_counter() - t0
    # the smallest, the largest and TRAIN random subnets calibrate; the rest are held out
    profile = session.with_samples(session.samples[: TRAIN + 2])
    held = [net.space.validate(a) for a, _ in session.samples[TRAIN + 2 :]]
    measured = np.array([m for _, m in session.samples[TRAIN + 2 :]])
    table = profile.table().predict_many(held)
    learned = LatencyPredictor.for_profile(profile).predict_many(held)
    later = measure_interleaved(  # the same subnets in a second session, minutes later
        [(a, net.export(a), shape) for a in held],
        runtime=runtime,
        device=torch.device("cpu"),
        threads=1,
        repeats=REPEATS,
        warmup=WARMUP,
        rounds=ROUNDS,
        seed=SEED + 1,
        normalize=True,
    )
    retimed = np.array([np.median(later.times[a]) for a in held])
    rescaled = profile.rescaled(later.reference_ms).table().predict_many(held)
    entries = sum(len(b.choices) for b in profile.blocks)
    what = (
        f"{HELD_OUT} held-out random subnets timed whole in the profile's session, {family} "
        f"{shape}, {runtime}, 1 thread, {CLOCK} clock; table of {entries} block choices + "
        f"{len(profile.samples)} whole subnets (the session took {profiled:.0f} s), each visit "
        f"normalized by the reference kernel timed with it; measured median "
        f"{np.median(measured):.3g} ms"
    )
    figures = [
        Figure(
            f"hardware.table_mape.{family}.{runtime}",
            _mape(table, measured),
            "%",
            f"MAPE of the latency table (sum of blocks + fixed part) vs measured: {what}",
            "<= 5",
            _mape(table, measured) <= 5,
        ),
        Figure(
            f"hardware.learned_mape.{family}.{runtime}",
            _mape(learned, measured),
            "%",
            f"MAPE of the learned predictor (ridge on the table sum + arch encoding, fitted on the "
            f"{len(profile.samples)} calibration subnets) vs measured: {what}",
            "<= 5",
            _mape(learned, measured) <= 5,
        ),
        Figure(
            f"hardware.session_drift_mape.{family}.{runtime}",
            _mape(retimed, measured),
            "%",
            f"the machine itself: MAPE between the held-out subnets' latencies in the profile's "
            f"session and in a second session right after it (median ratio "
            f"{np.median(retimed / measured):.2f}; reference kernel "
            f"{later.reference_ms / profile.reference_ms:.2f}x); the table's MAPE against the "
            f"second session: {_mape(table, retimed):.1f}%, rescaled to the second session's "
            f"reference (HardwareProfile.rescaled): {_mape(rescaled, retimed):.1f}%",
        ),
    ]
    if runtime == "eager":  # the same without normalizing, in a session right after
        raw = HardwareProfile.measure(net, shape, normalize=False, **settings)
        raw_profile = raw.with_samples(raw.samples[: TRAIN + 2])
        raw_measured = np.array([m for _, m in raw.samples[TRAIN + 2 :]])
        raw_table = raw_profile.table().predict_many(held)
        figures.append(
            Figure(
                f"hardware.table_mape_raw.{family}.{runtime}",
                _mape(raw_table, raw_measured),
                "%",
                "the table's MAPE measured the same way but without normalizing each visit by "
                "the reference kernel (normalize=False), in a session right after the profile's",
            )
        )
    for f in figures:
        _log(f"{f.name} = {f.value:.2f} {f.unit}")
    return figures, dict(zip(held, measured, strict=True)), profile


def _prediction_speed(family: str, profile: HardwareProfile) -> list[Figure]:
    net, _ = FAMILIES[family]()
    archs = net.space.sample(SEED + 2, n=PREDICT_N)
    table = profile.table()
    learned = LatencyPredictor.for_profile(profile)
    figures = []
    for name, predict in (("table", table.predict_many), ("learned", learned.predict_many)):
        times = []
        for _ in range(5):
            t0 = objectives._clock()  # the bench's clock (see the module's docstring)
            predict(archs)
            times.append(objectives._clock() - t0)
        ms = statistics.median(times) * 1e3
        figures.append(
            Figure(
                f"hardware.predict_10k_ms.{family}.{name}",
                ms,
                "ms",
                f"median of 5: predicting {PREDICT_N:,} archs (list of Arch) with the {name} "
                f"predictor, {CLOCK} clock",
                "<= 50",
                ms <= 50,
            )
        )
        _log(f"{figures[-1].name} = {ms:.1f} ms")
    return figures


def run() -> list[Figure]:
    threads, clock = torch.get_num_threads(), objectives._clock
    torch.set_num_threads(1)
    objectives._clock = time.thread_time if CLOCK == "thread" else time.perf_counter
    try:
        figures: list[Figure] = []
        for family in FAMILIES:
            measured = {}
            for runtime in RUNTIMES:
                got, measured[runtime], profile = _case(family, runtime)
                figures += got
                if runtime == "eager":
                    figures += _prediction_speed(family, profile)
            archs = list(measured["eager"])
            ratios = [measured["onnxruntime"][a] / measured["eager"][a] for a in archs]
            q1, q2, q3 = np.percentile(ratios, [25, 50, 75])
            figures.append(
                Figure(
                    f"hardware.onnxruntime_vs_eager.{family}",
                    float(q2),
                    "x",
                    f"median over {len(archs)} subnets of onnxruntime / eager latency "
                    f"(IQR {q1:.2f}-{q3:.2f}); < 1: onnxruntime is faster",
                )
            )
            _log(f"{figures[-1].name} = {q2:.2f} x")
        return figures
    finally:
        torch.set_num_threads(threads)
        objectives._clock = clock
