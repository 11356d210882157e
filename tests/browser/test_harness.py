"""The browser harness itself: a server that cannot start reports its own log (not an error from
stopping it), and stopping the server ends every kernel it started, although kernels run in
sessions of their own."""

from __future__ import annotations

import psutil
import pytest

from .conftest import api, require_lab, running_lab

pytestmark = pytest.mark.browser


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # ended (or a zombie) since it was listed
        return ""


def test_stopping_the_server_ends_its_kernels(tmp_path):
    require_lab()
    (tmp_path / "root").mkdir()
    with running_lab(tmp_path / "root", tmp_path / "settings") as lab:
        kernel = api(lab, "/api/kernels", method="POST")
        assert [k["id"] for k in api(lab, "/api/kernels")] == [kernel["id"]]
        server = psutil.Process(lab.pid)
        started = server.children(recursive=True)
        assert any("ipykernel" in _cmdline(p) for p in started)
    assert not _alive(server)
    assert [p.pid for p in started if _alive(p)] == []


def test_a_server_that_cannot_start_reports_its_log(tmp_path):
    require_lab()
    (tmp_path / "root").mkdir()
    missing = tmp_path / "no-such-folder"
    with (
        pytest.raises(RuntimeError, match=r"JupyterLab did not start \(exit code \d+\); log:"),
        running_lab(tmp_path / "root", tmp_path / "settings", (f"--ServerApp.root_dir={missing}",)),
    ):
        pytest.fail("the server started with a missing root folder")
