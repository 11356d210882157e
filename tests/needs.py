"""What a group of tests needs from the machine: a skip locally, a failure in CI."""

from __future__ import annotations

import os

import pytest


def require(reason: str | None, what: str) -> None:
    """Skips ``what`` with ``reason`` locally; under ``CI=true`` a missing tool is a failure
    (CI must never skip a test)."""
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} cannot run in CI: {reason}")
    pytest.skip(f"{what} skipped: {reason}")
