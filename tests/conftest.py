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
