"""Child processes for the multi-process tests (see ``child.py``), started together once per
test session: importing nasviz takes seconds, so they import in parallel, once, and each test
takes the ones it needs."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).parent


class Child:
    """A ``child.py`` process; a thread reads its output lines into a queue."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "child.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=HERE,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.log.append(line)
            self.lines.put(line.strip())
        self.lines.put("<eof>")

    def send(self, **job) -> None:
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, prefix: str, timeout: float = 300) -> str:
        """The next output line starting with ``prefix`` (earlier lines are skipped)."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line.startswith(prefix):
                return line
            assert line != "<eof>", f"the child ended before {prefix!r}:\n{''.join(self.log)}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc.stdin.close()
        self.proc.stdout.close()


class Pool:
    """Children started on first use, ``size`` at once; :meth:`take` hands out ready ones."""

    def __init__(self, size: int):
        self.size = size
        self._free: list[Child] = []
        self._all: list[Child] = []

    def take(self) -> Child:
        if not self._free:
            self._free = [Child() for _ in range(self.size)]
            self._all += self._free
        child = self._free.pop(0)
        child.wait_for("ready")
        return child

    def close(self) -> None:
        for child in self._all:
            child.close()
