"""Journal files: Optuna's append-only log format, with a lock no dead process can leave held
and torn last records set aside instead of poisoning the file.

The format is Optuna's (one compact JSON operation per line), so ``optuna.load_study`` and
optuna-dashboard read nasviz journals with Optuna's own ``JournalFileBackend``. What differs is
how nasviz reads, writes and locks them:

Lock
    Writers hold an exclusive ``flock`` on ``<journal>.nasviz-lock`` for the length of one
    append. The kernel releases it when its process dies (even by SIGKILL), so a crash can
    never leave it held. A live holder that keeps it past ``LOCK_TIMEOUT_S`` (a stopped or
    hung process) makes the writer fail with a :class:`~nasviz.errors.StorageError` naming
    that process and saying what to do, instead of waiting for ever. The lock file records the
    last holder (host, pid, time) for that message. Optuna's own symlink lock
    (``<journal>.lock``) is not used; one that dangles (Optuna makes it point at the journal's
    path as given, so a relative path dangles) is removed when nasviz opens the journal.

Torn records
    A process killed in the middle of a write, or a full disk, leaves an incomplete last line.
    Readers skip it (the complete records are all read) and warn once how many bytes it has;
    the next writer, holding the lock, moves those bytes to ``<journal>.torn-<time>`` beside
    the journal and truncates it to its last complete record before appending, so a torn tail
    never becomes an unparsable line in the middle of the file. Browsing never writes.

Durability
    ``"process"``: each append is written to the operating system before the call returns (a
    killed process loses nothing; an OS crash may lose the last writes). ``"os"``: also
    fsynced (survives an OS crash, several ms per write).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from optuna.storages.journal import BaseJournalBackend

from nasviz.errors import ConfigError, NasvizWarning, StorageError

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

__all__ = ["DURABILITY", "LOCK_TIMEOUT_S", "JournalFile", "JournalLock", "check_durability"]

#: Accepted ``durability`` values (see the module docstring).
DURABILITY = ("process", "os")
#: Seconds a writer waits for a lock held by a live process before it gives up with an error.
#: Writers hold it for milliseconds; a holder past this is stopped or hung.
LOCK_TIMEOUT_S = 30.0
#: Seconds a reader waits before it calls an incomplete last record torn (another process may
#: be writing it at that very moment).
SETTLE_S = 0.05
#: Age in seconds after which a dangling Optuna symlink lock is taken as left behind.
STALE_SYMLINK_S = 5.0
_OWNER_BYTES = 128


def check_durability(durability: Any) -> str:
    if durability not in DURABILITY:
        raise ConfigError(
            f"durability must be one of {DURABILITY} ('process': a killed process loses nothing; "
            f"'os': fsync every write, survives an OS crash too), got {durability!r}"
        )
    return durability


class JournalLock:
    """An exclusive, process-crash-proof lock for writing one journal file.

    ``flock`` on ``<journal>.nasviz-lock``; one instance may be used by many threads (a
    thread lock orders them, since ``flock`` does not exclude threads sharing a descriptor).
    Not picklable state is rebuilt on first use after unpickling.

    Args:
        journal: the journal file's path.
        timeout: seconds to wait for a live holder before raising StorageError.
    """

    def __init__(self, journal: str | Path, timeout: float = LOCK_TIMEOUT_S):
        self.path = os.path.abspath(f"{journal}.nasviz-lock")
        self.timeout = timeout
        self._thread = threading.Lock()
        self._fd: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"][: -len(".nasviz-lock")], state["timeout"])

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def __enter__(self) -> JournalLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        if not self._thread.acquire(timeout=self.timeout):
            raise StorageError(
                f"a thread of this process held the journal lock {self.path!r} for over "
                f"{self.timeout:g} s; a write should take milliseconds"
            )
        try:
            if fcntl is None:
                return  # threads of one process still exclude each other
            fd = self._descriptor()
            deadline = time.monotonic() + self.timeout
            pause = 0.0005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise StorageError(
                            f"cannot lock {self.path!r} ({exc}); the folder's file system must "
                            "support file locks (flock): use a local folder, or an SQLite or "
                            "PostgreSQL storage"
                        ) from exc
                if time.monotonic() > deadline:
                    raise StorageError(self._held_message())
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            owner = f"{socket.gethostname()} {os.getpid()} {time.time():.3f}"
            os.pwrite(fd, owner.encode()[:_OWNER_BYTES].ljust(_OWNER_BYTES), 0)
        except BaseException:
            self._thread.release()
            raise

    def release(self) -> None:
        try:
            if fcntl is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def _held_message(self) -> str:
        try:
            host, pid, since = Path(self.path).read_text().split()[:3]
            who = f"process {pid} on {host} (holding it since {time.ctime(float(since))})"
        except (OSError, ValueError):
            host, pid, who = "", "", "another process"
        advice = (
            f"that process is alive but stuck (stopped or hung): resume it (kill -CONT {pid}) "
            f"or end it (kill {pid})"
            if host == socket.gethostname()
            else "that process is alive but stuck: resume or end it"
        )
        return (
            f"the journal lock {self.path!r} is held by {who} for over {self.timeout:g} s, "
            f"though a write takes milliseconds; {advice}. A lock of a process that died is "
            "released by the system and never needs removing"
        )


def _remove_dangling_symlink_lock(journal: str) -> None:
    """Removes an Optuna symlink lock ``<journal>.lock`` that points nowhere and is old (left
    by a killed process: Optuna's stale-lock recovery stats the target, so it never frees a
    dangling one and every later Optuna writer waits for ever)."""
    lock = f"{journal}.lock"
    try:
        st = os.lstat(lock)
    except OSError:
        return
    if not os.path.islink(lock) or os.path.exists(lock):
        return  # not a symlink, or one that resolves: a live writer's, Optuna frees it itself
    if time.time() - st.st_mtime > STALE_SYMLINK_S:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


class JournalFile(BaseJournalBackend):
    """A journal file for :class:`optuna.storages.JournalStorage` (see the module docstring).

    Args:
        path: the journal file; created when ``writable`` and missing.
        durability: ``"process"`` or ``"os"``.
        writable: False opens it to browse: nothing is ever written (appending raises).
        lock_timeout: see :class:`JournalLock`.

    Contract: :meth:`read_logs` and :meth:`append_logs` are called by one JournalStorage,
    under its thread lock; the file may be appended to by any number of processes at once.
    """

    def __init__(
        self,
        path: str | Path,
        durability: str = "process",
        writable: bool = True,
        lock_timeout: float = LOCK_TIMEOUT_S,
    ):
        self.path = os.path.abspath(os.path.expanduser(str(path)))
        self.durability = check_durability(durability)
        self.writable = writable
        self.lock = JournalLock(self.path, lock_timeout)
        self._number = 0  # the next log number to read ...
        self._offset = 0  # ... and where it starts
        self._recent: dict[int, int] = {0: 0}  # log number -> offset, for the last batch read
        self._expected_size = -1  # the file's size after our last append (-1: unknown)
        self._warned_tail = -1  # offset of the torn tail last warned about
        self._rfd: int | None = None
        self._wfd: int | None = None
        if writable:
            _remove_dangling_symlink_lock(self.path)
            with self.lock:
                if not os.path.exists(self.path):
                    open(self.path, "ab").close()
                self._check_first_record()
                self._set_aside_torn_tail()

    # ---- reading -----------------------------------------------------------------------
    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        if log_number_from != self._number:
            if log_number_from in self._recent:
                self._number, self._offset = log_number_from, self._recent[log_number_from]
            else:  # a caller that starts over: scan from the beginning
                self._number, self._offset, self._recent = 0, 0, {0: 0}
                skip = log_number_from
                out = self.read_logs(0)
                return out[skip:]
        fd = self._fd("_rfd", os.O_RDONLY)
        size = os.fstat(fd).st_size
        if size == self._offset:
            return []
        data = os.pread(fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1  # complete lines end here
        lines = data[:end].split(b"\n")[:-1]
        logs = []
        recent = {self._number: self._offset}
        offset = self._offset
        for k, line in enumerate(lines):
            logs.append(self._parse(line, self._number + k, offset))
            offset += len(line) + 1
            recent[self._number + k + 1] = offset
        self._number += len(lines)
        self._offset = offset
        self._recent = recent
        if end < len(data) and not self.writable:
            self._torn_tail()  # a writer sets it aside (and says so) before its next append
        return logs

    def _parse(self, line: bytes, number: int, offset: int) -> dict[str, Any]:
        try:
            log = json.loads(line)
            if not isinstance(log, dict) or "op_code" not in log:
                raise ValueError("not an Optuna journal operation")
            return log
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            which = f"record {number + 1}" if number >= 0 else "its last complete record"
            raise StorageError(
                f"{self.path!r} is not a readable Optuna journal: {which} (byte "
                f"{offset}) is not a journal operation ({type(exc).__name__}: {exc}). A "
                "journal torn by a crash has only an incomplete last record, which nasviz "
                "sets aside; this damage is elsewhere, so the file was left as it is"
            ) from None

    def _torn_tail(self) -> None:
        """Warns once about an incomplete last record (it may be a write still in progress in
        another process: only one still there a moment later is reported)."""
        if self._warned_tail == self._offset:
            return
        time.sleep(SETTLE_S)
        size = os.stat(self.path).st_size
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            rest = f.read(size - self._offset)
        if b"\n" in rest:
            return  # it was being written: read with the next call
        self._warned_tail = self._offset
        if self._offset == 0:
            raise StorageError(
                f"{self.path!r} is not an Optuna journal: it holds {len(rest)} bytes and not "
                "one complete record"
            )
        warnings.warn(
            f"journal {self.path!r} ends with a torn record ({len(rest)} bytes; a write cut "
            "short, e.g. by a crash): every complete record before it is read. Browsing "
            "leaves the file as it is; the next search that writes to it moves those bytes to "
            "a .torn file beside it",
            NasvizWarning,
            stacklevel=2,
        )

    # ---- writing -----------------------------------------------------------------------
    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if not self.writable:
            raise StorageError(
                f"{self.path!r} was opened to browse, read-only; pass net_or_fn to Search.load "
                "to resume the search (and write to it)"
            )
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        with self.lock:
            self._set_aside_torn_tail()
            fd = self._fd("_wfd", os.O_WRONLY | os.O_APPEND)
            view = memoryview(data)
            while view:  # one write, unless the OS takes less
                view = view[os.write(fd, view) :]
            if self.durability == "os":
                os.fsync(fd)
            self._expected_size = os.lseek(fd, 0, os.SEEK_CUR)

    def _fd(self, name: str, flags: int) -> int:
        """A descriptor of the journal kept open (reading and appending without reopening)."""
        fd = getattr(self, name)
        if fd is None:
            fd = os.open(self.path, flags)
            setattr(self, name, fd)
        return fd

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_rfd": None, "_wfd": None}

    def __del__(self) -> None:
        for fd in (getattr(self, "_rfd", None), getattr(self, "_wfd", None)):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _check_first_record(self) -> None:
        """StorageError unless the file is empty or starts with a journal operation (nothing
        is set aside from a file that is no journal)."""
        with open(self.path, "rb") as f:
            head = f.read(1 << 20)
        end = head.find(b"\n")
        if head and end < 0 and len(head) == 1 << 20:
            raise StorageError(f"{self.path!r} is not an Optuna journal (no line break in 1 MiB)")
        if end >= 0:
            self._parse(head[:end], 0, 0)

    def _set_aside_torn_tail(self) -> None:
        """Under the lock: moves an incomplete last record to ``<journal>.torn-<time>`` and
        truncates the journal to its last complete record."""
        size = os.stat(self.path).st_size if self._wfd is None else os.fstat(self._wfd).st_size
        if size == 0 or size == self._expected_size:
            return  # nobody else wrote since our last complete append
        with open(self.path, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            start = max(0, size - (1 << 20))
            f.seek(start)
            chunk = f.read(size - start)
            cut = chunk.rfind(b"\n")
            if cut < 0 and start > 0:
                raise StorageError(
                    f"{self.path!r} ends with over 1 MiB without a line break; it is not an "
                    "intact Optuna journal, so nasviz leaves it as it is"
                )
            keep = start + cut + 1
            if keep > 0:  # the last complete record must be a journal operation too
                last = chunk[:cut].rsplit(b"\n", 1)[-1]
                self._parse(last, -1, keep - len(last) - 1)
            if keep == 0:
                raise StorageError(
                    f"{self.path!r} is not an Optuna journal: it holds {size} bytes and not one "
                    "complete record"
                )
            torn = Path(f"{self.path}.torn-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            torn.write_bytes(chunk[cut + 1 :])
            f.truncate(keep)
        warnings.warn(
            f"journal {self.path!r} ended with a torn record ({size - keep} bytes; a write cut "
            f"short, e.g. by a crash); set aside as {str(torn)!r}, every complete record kept",
            NasvizWarning,
            stacklevel=3,
        )
