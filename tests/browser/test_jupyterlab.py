"""JupyterLab in headless Chromium: a live view finishes while the kernel idles; the Temporal UI loads."""

# The UI loads through jupyter-server-proxy, framed in the notebook, on its own page and from the
# launcher tile's index. Screenshots land in test-artifacts/browser/.

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
TOKEN = "stigmer-browser-test"
DOC = """
document: {dsl: '1.0.0', namespace: browser, name: browser-demo, version: '1.0.0'}
do:
  - greet:
      set: {greeting: '${ "hello " + .name }'}
  - pause:
      wait: {seconds: 10}
  - group:
      do:
        - inner:
            set: {done: true}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process_group(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM the group led by ``proc`` (started with start_new_session), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@dataclass
class Jupyter:
    url: str
    root: Path
    home: Path
    proc: subprocess.Popen[bytes]

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.url}api/{path}", method=method, headers={"Authorization": f"token {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[Jupyter]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make test installs it: apt-get install chromium)")
    root = tmp_path / "notebooks"
    root.mkdir()
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    config = tmp_path / "config"
    config.mkdir()
    installed = {e.name for e in entry_points(group="jupyter_serverproxy_servers")}
    if "temporal-ui" not in installed:  # an editable install made before the entry point existed
        (config / "jupyter_server_config.py").write_text(
            "from stigmer_nb.widgets.proxy import server_proxy_entry\n"
            "c.ServerProxy.servers = {'temporal-ui': server_proxy_entry()}\n"
        )
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    args = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Jupyter(f"http://127.0.0.1:{port}/", root, tmp_path / "stigmer-home", proc)
    try:
        wait_for(lambda: _answers(server), 60, "JupyterLab to answer")
        yield server
    finally:
        # Kernels first (their labs stop the embedded Temporal server), then the server itself.
        with contextlib.suppress(Exception):
            for kernel in server.api("kernels"):
                server.api(f"kernels/{kernel['id']}", method="DELETE")
        stop_process_group(proc)
        log.close()
        _stop_leftover_temporal(server.home)


def _answers(server: Jupyter) -> bool:
    if server.proc.poll() is not None:
        raise AssertionError(f"JupyterLab exited with {server.proc.returncode}")
    try:
        server.api("status")
    except OSError:
        return False
    return True


def _stop_leftover_temporal(home: Path) -> None:
    """If the kernel died before its lab stopped, stop the lab's server by the PID it recorded."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        pid = int(json.loads((home / "temporal.pid").read_text())["pid"])
        if "start-dev" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium started by us (so we own its PID), driven by Playwright over CDP."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    args = [
        CHROMIUM,
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30, "Chromium's DevTools port")
        port = port_file.read_text().split()[0]
        with sync_playwright() as playwright:
            browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
            try:
                yield browser
            finally:
                browser.close()
    finally:
        stop_process_group(proc)


def write_notebook(server: Jupyter) -> str:
    cells = [
        "%load_ext stigmer_nb",
        f"%stigmer start --home {server.home} durable=false",
        f"execution = lab.run({DOC!r}, input={{'name': 'browser'}})\nexecution",
        "lab.temporal_ui()",
        "lab.dashboard()",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, server.root / "live.ipynb")
    return "live.ipynb"


def kernel_state(server: Jupyter) -> str:
    kernels = server.api("kernels")
    return kernels[0]["execution_state"] if kernels else "none"


def test_live_view_and_temporal_ui_in_jupyterlab(jupyter: Jupyter, browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = write_notebook(jupyter)
    context = browser.contexts[0] if browser.contexts else browser.new_context()
    page = context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{jupyter.url}lab/tree/{name}?token={TOKEN}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    wait_for(lambda: kernel_state(jupyter) == "idle", 60, "the kernel to start")

    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    view = page.locator(".stigmer-view")
    view.wait_for(timeout=60_000)
    wait_for(lambda: page.locator(".stigmer-dashboard").count() == 1, 60, "the last cell's output")
    wait_for(lambda: kernel_state(jupyter) == "idle", 60, "the cells to finish")

    # Every cell has run and the kernel idles; the execution is still going (it waits 10 s, which
    # leaves room for a slow dashboard cell on a loaded machine). Phase and button are read in one
    # go so that the run cannot finish between the two reads.
    phase, cancel_shown = page.evaluate(
        """() => {
            const view = document.querySelector('.stigmer-view');
            const button = view.querySelector('.stigmer-cancel');
            const shown = !!button && getComputedStyle(button).display !== 'none'
                && button.getBoundingClientRect().width > 0;
            return [view.querySelector('.stigmer-phase').getAttribute('data-phase'), shown];
        }"""
    )
    assert phase in ("EXECUTION_PENDING", "EXECUTION_IN_PROGRESS"), phase
    assert cancel_shown
    page.screenshot(path=str(ARTIFACTS / "1-running.png"), full_page=True)

    # Updates arrive from the lab's thread while the kernel stays idle.
    page.wait_for_selector(".stigmer-view .stigmer-phase[data-phase='EXECUTION_COMPLETED']", timeout=30_000)
    assert kernel_state(jupyter) == "idle"
    assert "4/4 tasks" in view.locator(".stigmer-progress").inner_text()
    assert '"done": true' in view.locator(".stigmer-output").inner_text()
    assert view.locator(".stigmer-cancel").is_hidden()
    page.screenshot(path=str(ARTIFACTS / "2-completed.png"), full_page=True)

    # The dashboard below follows the history on its own: its table shows the finished run too.
    dashboard = page.locator(".stigmer-dashboard")
    dashboard.locator(".stigmer-executions td", has_text="COMPLETED").first.wait_for(timeout=30_000)
    assert dashboard.locator("img").count() >= 4  # phase counts, durations, throughput, timeline
    dashboard.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "5-dashboard.png"), full_page=True)
    assert kernel_state(jupyter) == "idle"

    # The Temporal UI, framed in the notebook through jupyter-server-proxy.
    frame_element = page.locator("iframe.stigmer-temporal-ui")
    src = frame_element.get_attribute("src")
    assert src is not None and "/proxy/absolute/" in src
    frame_element.scroll_into_view_if_needed()
    execution_id = page.locator(".stigmer-view code").first.inner_text().strip()
    frame = page.frame_locator("iframe.stigmer-temporal-ui")
    frame.get_by_text(f"stigmer/workflow-execution/invoke/{execution_id}").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "3-temporal-ui-in-notebook.png"), full_page=True)

    # And on its own page, as the link opens it.
    ui = context.new_page()
    ui.set_viewport_size({"width": 1400, "height": 900})
    response = ui.goto(f"{jupyter.url.rstrip('/')}{src}", wait_until="domcontentloaded")
    assert response is not None and response.ok
    ui.get_by_text(f"workflow-exec-{execution_id}").first.wait_for(timeout=60_000)
    ui.screenshot(path=str(ARTIFACTS / "4-temporal-ui.png"), full_page=True)
    # The "Temporal UI" launcher tile's page forwards to the only lab's UI.
    ui.goto(f"{jupyter.url}temporal-ui/", wait_until="domcontentloaded")
    ui.get_by_text(f"workflow-exec-{execution_id}").first.wait_for(timeout=60_000)
    assert "/proxy/absolute/" in ui.url
    ui.close()
    page.close()
