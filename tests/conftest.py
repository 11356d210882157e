"""Shared test settings."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Machines in CI are small and shared: no per-example deadline, fixed example counts.
settings.register_profile(
    "nasviz",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "nasviz"))


# ---- tests that need a CUDA device -------------------------------------------------------
# Tests marked ``gpu`` are deselected unless ``--gpu`` is given (``make test-gpu``); the run
# prints how many were deselected and why, so CI (which has no GPU) never skips silently.


def pytest_addoption(parser):
    parser.addoption(
        "--gpu", action="store_true", default=False, help="run the tests marked gpu (needs CUDA)"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--gpu"):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if item.get_closest_marker("gpu") is None]
        config._nasviz_gpu_deselected = len(gpu)


def pytest_terminal_summary(terminalreporter, config):
    n = getattr(config, "_nasviz_gpu_deselected", 0)
    if n:
        terminalreporter.write_line(
            f"{n} tests marked gpu were deselected: they need a CUDA device; "
            "run them with `make test-gpu` on a machine that has one"
        )
