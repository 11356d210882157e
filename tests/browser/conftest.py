"""Real-browser fixtures: a JupyterLab server on a free loopback port and Debian's chromium
driven by Playwright (headless). Screenshots go to tests/browser/artifacts/ (not committed).

Where chromium, Playwright or JupyterLab is missing the tests skip with a message, except in CI
(``CI=true``), where that is a failure.

Shutdown is always complete, also when a test or the server's start fails: the server's kernels
run in sessions of their own, so they are shut down through the REST API and then killed by pid
before the server itself is stopped. Console errors collected before a test fails are printed
with its failure; a test that passes with console errors fails at teardown.
"""

from __future__ import annotations

import contextlib
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


def _missing_lab() -> str | None:
    try:
        import jupyterlab  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[dev]')"
    return None


def _require(reason: str | None, what: str) -> None:
    """Skips with ``reason`` locally; under ``CI=true`` a missing tool is a failure."""
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} cannot run in CI: {reason}")
    pytest.skip(f"{what} skipped: {reason}")


def _require_browser() -> None:
    _require(_missing(), "browser tests")


def require_lab() -> None:
    """For tests that drive the JupyterLab server alone (no browser)."""
    _require(_missing_lab(), "JupyterLab tests")


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
    pid: int

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def _write_lab_settings(settings: Path) -> None:
    """Render every cell (no windowing: off-screen widgets stay in the DOM); fetch no news."""
    for plugin, values in (
        ("notebook-extension/tracker", {"windowingMode": "none"}),
        ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False}),
    ):
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def api(lab: Lab, path: str, method: str = "GET", timeout: float = 10) -> object:
    request = urllib.request.Request(f"{lab.url}{path}?token={lab.token}", method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def _shutdown_kernels(lab: Lab) -> None:
    """Asks the server to shut down each kernel (best effort: the server may be gone)."""
    try:
        kernels = api(lab, "/api/kernels")
    except OSError:
        return
    for kernel in kernels:
        with contextlib.suppress(OSError):
            api(lab, f"/api/kernels/{kernel['id']}", method="DELETE", timeout=20)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def stop_lab(proc: subprocess.Popen, lab: Lab | None) -> None:
    """Stops the server and everything it started, kernels included; never raises for a
    process that is already gone (so a server that died at startup keeps its own error)."""
    import psutil

    try:
        started = psutil.Process(proc.pid).children(recursive=True)  # kernels have own sessions
    except psutil.NoSuchProcess:
        started = []
    if lab is not None and proc.poll() is None:
        _shutdown_kernels(lab)
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(15)
    for child in started:  # whatever outlived the server, by pid (psutil checks it is the same)
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(started, timeout=10)


@contextlib.contextmanager
def running_lab(root: Path, settings: Path, extra_args: tuple[str, ...] = ()) -> Iterator[Lab]:
    """A JupyterLab server on ``root`` (a free loopback port, a random token), stopped with all
    its kernels when the block ends, however it ends."""
    port, token = _free_port(), secrets.token_hex(16)
    log = root / "lab.log"
    _write_lab_settings(settings)
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
                *extra_args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
            start_new_session=True,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, proc.pid)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                api(lab, "/api/status", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start (exit code {proc.poll()}); log:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.5)
        yield lab
    finally:
        stop_lab(proc, lab)


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """A JupyterLab server on a copy of notebooks/."""
    _require_browser()
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(
        ROOT / "notebooks", root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("runs", "out")
    )
    with running_lab(root, tmp_path_factory.mktemp("lab-settings")) as server:
        yield server


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keeps each phase's report on the item, and adds the browser's console errors to the
    report of a failing test (they are otherwise asserted only at its end)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"_nasviz_{report.when}", report)
    s = getattr(item, "_nasviz_session", None)
    if s is not None and report.failed and s.errors:
        report.sections.append(("browser console errors", "\n".join(s.errors)))


@pytest.fixture
def session(browser, request) -> Iterator[Session]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    s = Session(page, request.node.name)
    request.node._nasviz_session = s

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
    call = getattr(request.node, "_nasviz_call", None)
    if s.errors and call is not None and call.passed:
        pytest.fail("the browser console logged errors:\n" + "\n".join(s.errors))


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
