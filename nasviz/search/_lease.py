"""Leases: how a search tells a trial that another process is still evaluating from one whose
process died.

Every trial a search evaluates carries a lease in its system attributes (``nasviz:lease``):
the owner (a search engine, unique per process and Search object), its host, boot and
process, and a time at which the lease expires unless renewed. The owner renews the leases of
its evaluations in flight every ``heartbeat`` seconds (:class:`Heartbeat`), pushing the expiry
``LEASE_BEATS`` heartbeats ahead. Another search declares a trial dead (and may retry its arch)
only when:

    * its lease expired (the owner stopped renewing it: killed, stopped, cut off), or
    * its owner ran on the same host and boot and that process is gone (checked at once, by
      process id and start time, so a restarted search on one machine retries at once), or
      its owner is another search of the same process whose run has ended.

Clocks: expiry compares wall-clock times written by the owner's machine with the reader's;
machines that share a study must agree within a fraction of the lease (``LEASE_BEATS x
heartbeat``, 30 s by default), which NTP gives. A trial without a lease was left by a nasviz
version that had none (it never shared storages), so it is dead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any

__all__ = ["LEASE_BEATS", "LEASE_KEY", "Heartbeat", "Owner", "is_dead"]

#: System attribute holding a trial's lease.
LEASE_KEY = "nasviz:lease"
#: A lease runs this many heartbeats ahead of its last renewal.
LEASE_BEATS = 3
#: Owners in this process whose run is active (their leases are alive while they are here).
_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' when unknown, '-' when gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return "-"
    except (OSError, IndexError):
        return ""


def _alive(pid: int, start: str) -> bool:
    """Whether process ``pid`` (started at ``start``, '' if unknown) still runs."""
    now = _start_time(pid)
    if now == "-":
        return False
    if now and start:
        return now == start  # the same pid may belong to a newer process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Owner:
    """The identity a search engine writes into its leases (unique per engine instance)."""

    def __init__(self, heartbeat: float):
        self.heartbeat = heartbeat
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.label = f"{self.host}:{self.pid}"
        self._static = {
            "owner": self.id,
            "host": self.host,
            "boot": _boot_id(),
            "pid": self.pid,
            "start": _start_time(self.pid),
        }

    def lease(self) -> dict[str, Any]:
        """A lease valid for ``LEASE_BEATS`` heartbeats from now."""
        return {**self._static, "expires": time.time() + LEASE_BEATS * self.heartbeat}

    def running(self, active: bool) -> None:
        """Marks this owner's run active or ended (leases of an owner in this process whose
        run ended are dead at once)."""
        with _RUNNING_LOCK:
            (_RUNNING.add if active else _RUNNING.discard)(self.id)


def is_dead(lease: dict[str, Any] | None, me: Owner, now: float | None = None) -> bool:
    """Whether the trial holding ``lease`` can no longer finish (see the module docstring)."""
    if not isinstance(lease, dict):
        return True
    if lease.get("owner") == me.id:
        return False  # our own: we know whether we are evaluating it
    if (now if now is not None else time.time()) > float(lease.get("expires", 0.0)):
        return True
    if lease.get("host") == me.host:
        if lease.get("boot") and lease.get("boot") != _boot_id():
            return True  # a previous boot of this machine
        if int(lease.get("pid", -1)) == me.pid:  # another search of this very process
            with _RUNNING_LOCK:
                return lease.get("owner") not in _RUNNING
        return not _alive(int(lease.get("pid", -1)), str(lease.get("start", "")))
    return False


class Heartbeat:
    """Renews the leases of the trials a search evaluates, every ``owner.heartbeat`` seconds,
    in a daemon thread, until :meth:`stop`.

    Args:
        owner: whose leases.
        in_flight: returns the storage ids of the trials being evaluated now (called from the
            heartbeat thread; must be thread-safe).
        renew: ``renew(trial_id, lease)`` writes a lease (may raise when the trial finished
            meanwhile; such errors are ignored: the next beat no longer lists it).
    """

    def __init__(
        self,
        owner: Owner,
        in_flight: Callable[[], list[int]],
        renew: Callable[[int, dict[str, Any]], None],
    ):
        self.owner = owner
        self._in_flight = in_flight
        self._renew = renew
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="nasviz-heartbeat", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        while not self._stop.wait(self.owner.heartbeat):
            lease = self.owner.lease()
            for trial in self._in_flight():
                with contextlib.suppress(Exception):  # finished meanwhile, or storage busy
                    self._renew(trial, lease)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
