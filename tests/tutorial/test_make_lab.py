"""A fresh clone plus `make lab` reaches a JupyterLab that serves the notebooks."""

# The clone is the committed HEAD, set up from nothing the way the README says (`make lab` creates
# .venv and installs into it). The server is configured through a Jupyter config directory (not
# the Makefile): loopback, a random port, a token, no browser, and allow_root for containers.
# It is stopped through the process group of `make`, whose leader's PID we hold.

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, alive, clean_env, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def _api(base: str, path: str, token: str) -> Any:
    return json.loads(_get(f"{base}api/{path}", token)[1])


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_fresh_clone_make_lab_serves_the_notebooks(tmp_path: Path) -> None:
    if not (REPO / ".git").exists() or shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("needs a git checkout, git and make")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    assert not (clone / ".venv").exists()

    env = clean_env(tmp_path / "state")
    port, token = free_port(), secrets.token_hex(16)
    config = Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.py"
    config.write_text(
        f"c.ServerApp.port = {port}\n"
        "c.ServerApp.port_retries = 0\n"
        "c.ServerApp.open_browser = False\n"
        "c.ServerApp.allow_root = True\n"
        f"c.IdentityProvider.token = {token!r}\n"
    )
    base = f"http://127.0.0.1:{port}/"
    log_path = tmp_path / "make-lab.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        make = subprocess.Popen(
            ["make", "lab"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server_pid = None
    try:
        deadline = time.monotonic() + 600
        while True:
            if make.poll() is not None:
                pytest.fail(f"make lab exited with {make.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                _api(base, "status", token)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"no JupyterLab on {base} after 600s:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.5)
        print(f"make lab in a fresh clone: JupyterLab answered after {time.monotonic() - started:.1f}s")
        runtime = Path(env["JUPYTER_RUNTIME_DIR"])
        servers = [json.loads(p.read_text()) for p in runtime.glob("jpserver-*.json")]
        server_pid = next(s["pid"] for s in servers if int(s["port"]) == port)

        # Everything came from the clone's own .venv.
        assert (clone / ".venv" / "bin" / "jupyter").exists()
        assert (clone / ".venv" / "bin" / "stigmer-nb").exists()

        # The notebook list over HTTP: exactly the clone's notebooks, the quickstart among them.
        listing = _api(base, "contents?content=1", token)
        served = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
        expected = sorted(p.name for p in (clone / "notebooks").glob("*.ipynb"))
        assert served == expected and "01-quickstart.ipynb" in served, (served, expected)
        quickstart = _api(base, "contents/01-quickstart.ipynb", token)
        assert quickstart["type"] == "notebook" and quickstart["content"]["cells"]
        status, page = _get(f"{base}lab", token)
        assert status == 200 and b"JupyterLab" in page
    finally:
        _stop_group(make)
    assert make.returncode is not None
    if server_pid is not None:
        deadline = time.monotonic() + 10
        while alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(server_pid), f"JupyterLab (pid {server_pid}) is still running"
