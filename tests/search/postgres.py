"""A real PostgreSQL server for the tests: Debian's postgresql package, started on a temporary
folder and a free loopback port, always stopped and removed afterwards.

PostgreSQL refuses to run as root, and CI runs as root: then ``initdb`` and ``pg_ctl`` run as
the ``postgres`` user (``nobody`` if there is none) through ``runuser``, on a folder that
user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def binaries() -> Path | None:
    """The newest PostgreSQL server's bin folder (Debian's layout, or initdb on PATH)."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def missing() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
    if binaries() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root needs runuser (util-linux) to start PostgreSQL as another user"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Starts a server (trust authentication, user ``nasviz``, no fsync: throwaway data) and
    yields its base URL ``postgresql+psycopg://nasviz@127.0.0.1:<port>``."""
    bin_dir = binaries()
    folder = Path(tempfile.mkdtemp(prefix="nasviz-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        name = "postgres"
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            name, user = "nobody", pwd.getpwnam("nobody")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", name, "--"]
    data, port = folder / "data", _free_port()
    subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "nasviz",
         "--no-sync", "-E", "UTF8"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [*ctl, "-o", options, "-l", str(folder / "log"), "-w", "-t", "60", "start"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        yield f"postgresql+psycopg://nasviz@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*ctl, "-m", "immediate", "-w", "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new, empty database on ``server``; yields its URL and drops it afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = server.replace("+psycopg", "")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
