"""Real-browser fixtures: a JupyterLab server on a free loopback port and Debian's chromium
driven by Playwright (headless). Screenshots go to tests/browser/artifacts/ (not committed).

Where chromium, Playwright or JupyterLab is missing the tests skip with a message, except in CI
(``CI=true``), where that is a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = os.environ.get("NASVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import jupyterlab  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[dev]')"
    return None


def _require_browser() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(f"browser tests need a browser: {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """A JupyterLab server on a copy of notebooks/, stopped by its own pid at the end."""
    _require_browser()
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(
        ROOT / "notebooks", root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("runs", "out")
    )
    port, token = _free_port(), secrets.token_hex(16)
    log = root / "lab.log"
    settings = tmp_path_factory.mktemp("lab-settings")
    # render every cell (no windowing: off-screen widgets stay in the DOM) and fetch no news
    for plugin, values in (
        ("notebook-extension/tracker", {"windowingMode": "none"}),
        ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False}),
    ):
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start; log:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.5)
        yield Lab(url, token, root, log)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Session:
    """A page plus what the test collects: console errors and step screenshots."""

    page: object
    name: str
    errors: list[str] = field(default_factory=list)
    step: int = 0

    def shot(self, label: str) -> Path:
        self.step += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png"
        self.page.screenshot(path=str(path))
        return path


# Messages JupyterLab itself logs that are not errors of ours (none known yet; keep it that way).
IGNORED_CONSOLE = ()


@pytest.fixture
def session(browser, request) -> Iterator[Session]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    s = Session(page, request.node.name)

    def on_console(msg):
        if msg.type == "error" and not any(text in msg.text for text in IGNORED_CONSOLE):
            s.errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: s.errors.append(f"pageerror: {exc}"))
    try:
        yield s
    finally:
        try:
            s.shot("final")
        finally:
            context.close()


def open_notebook(s: Session, lab: Lab, name: str) -> None:
    """Opens a notebook and waits for its kernel to be idle."""
    page = s.page
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    wait_idle(s)
    s.shot("opened")


def wait_idle(s: Session, timeout_ms: int = 180_000) -> None:
    """Waits for the status bar to say the kernel is idle."""
    s.page.wait_for_function("document.body.innerText.includes('| Idle')", timeout=timeout_ms)


def run_all(s: Session, timeout_ms: int = 240_000) -> None:
    """Run menu -> Run All Cells, then waits until no cell is queued or running."""
    page = s.page
    page.click("text=Run", timeout=30_000)
    page.click("text=Run All Cells")
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-InputPrompt').length > 0 && "
        "[...document.querySelectorAll('.jp-InputPrompt')].every(p => !p.innerText.includes('*'))",
        timeout=timeout_ms,
    )
    wait_idle(s, timeout_ms)
    s.shot("ran")


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25):
    """Polls ``predicate`` until it returns something truthy (returned) or fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.0f} s")
