"""JupyterLab in headless Chromium: a live view finishes while the kernel idles; the Temporal UI loads;
the view and the dashboard stay readable in the dark theme."""

# The UI loads through jupyter-server-proxy, framed in the notebook, on its own page and from the
# launcher tile's index. Screenshots land in test-artifacts/browser/.

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
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


# Colours as the browser resolved them (any CSS syntax, color-mix included) through a 1x1 canvas,
# composited over the nearest ancestor's background: the contrast of every text in an element.
_CONTRASTS = """(selector) => {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 1;
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    const rgba = (css) => {
        ctx.clearRect(0, 0, 1, 1);
        ctx.fillStyle = 'rgba(0, 0, 0, 0)';
        ctx.fillStyle = css;
        ctx.fillRect(0, 0, 1, 1);
        const d = ctx.getImageData(0, 0, 1, 1).data;
        return [d[0], d[1], d[2], d[3] / 255];
    };
    const over = (top, below) => top.slice(0, 3).map((c, i) => c * top[3] + below[i] * (1 - top[3]));
    const page = rgba(getComputedStyle(document.body).getPropertyValue('--jp-layout-color0') || 'white');
    const background = (el) => {
        const layers = [];
        for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
            const bg = rgba(getComputedStyle(node).backgroundColor);
            if (bg[3] > 0) layers.push(bg);
            if (bg[3] >= 0.99) break;
        }
        return layers.reverse().reduce((below, top) => over(top, below), page.slice(0, 3));
    };
    const luminance = (rgb) => {
        const [r, g, b] = rgb.map((c) => {
            c /= 255;
            return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const found = [];
    for (const root of document.querySelectorAll(selector)) {
        for (const el of [root, ...root.querySelectorAll('*')]) {
            if (el.tagName === 'OPTION' || !el.getClientRects().length) continue;
            const text = [...el.childNodes]
                .filter((n) => n.nodeType === 3).map((n) => n.textContent.trim()).join(' ').trim();
            if (!text) continue;
            const style = getComputedStyle(el);
            if (style.visibility === 'hidden' || parseFloat(style.opacity) < 0.1) continue;
            const bg = background(el);
            const fg = over(rgba(style.color), bg);
            const [a, b] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
            found.push({
                ratio: (a + 0.05) / (b + 0.05), text: text.slice(0, 40), tag: el.tagName,
                cls: String(el.className).slice(0, 40), color: style.color, bg: bg.map(Math.round),
            });
        }
    }
    return found.sort((x, y) => x.ratio - y.ratio);
}"""
# The dashboard's chart images: opacity and lightness of a pixel inside the frame, and the frame.
_CHART_PIXELS = """(selector) => [...document.querySelectorAll(selector)]
    .filter((img) => img.complete && img.naturalWidth > 0)
    .map((img) => {
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const ctx = canvas.getContext('2d', {willReadFrequently: true});
        ctx.drawImage(img, 0, 0);
        const inside = [...ctx.getImageData(4, 4, 1, 1).data];
        const frame = [...ctx.getImageData(Math.floor(img.naturalWidth / 2), 0, 1, 1).data];
        return {inside, frame, width: img.naturalWidth};
    })"""


def readability(page: Any, selector: str) -> list[dict[str, Any]]:
    """Every visible text under ``selector`` with its contrast ratio, the worst first."""
    return list(page.evaluate(_CONTRASTS, selector))


def running_seconds(page: Any) -> float:
    """The duration shown beside the view's running timeline bar (``4.21s…``), in seconds."""
    text = page.evaluate(
        """() => {
            const bar = document.querySelector(".stigmer-view .stigmer-timeline-bar[data-status='IN_PROGRESS']");
            return bar ? bar.parentElement.nextElementSibling.innerText : '';
        }"""
    )
    match = re.search(r"([\d.]+)s…", text)
    return float(match.group(1)) if match else -1.0


def kernel_state(server: Jupyter) -> str:
    kernels = server.api("kernels")
    return kernels[0]["execution_state"] if kernels else "none"


def graph_node(page: Any, node_id: str) -> dict[str, str]:
    """The status class and fill colour of one task node in the view's graph (empty when not drawn)."""
    return dict(
        page.evaluate(
            """(id) => {
                const node = document.querySelector('.stigmer-view .stigmer-graph svg [id="' + id + '"]');
                if (!node) return {status: '', fill: ''};
                const status = [...node.classList].find(c => c.startsWith('stigmer-')
                    && c !== 'stigmer-node' && !c.startsWith('stigmer-kind-')) || '';
                const shape = node.querySelector('polygon, ellipse, path');
                return {status, fill: shape ? shape.getAttribute('fill') : ''};
            }""",
            node_id,
        )
    )


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

    # The timeline panel, picked while it runs, grows with the clock (updates from the lab's thread).
    view.locator(".stigmer-panel-select button", has_text="Timeline").click()
    page.wait_for_selector(".stigmer-view .stigmer-timeline-bar[data-status='IN_PROGRESS']", timeout=15_000)
    first = wait_for(lambda: running_seconds(page) > 0 and running_seconds(page), 10, "a running bar")
    wait_for(lambda: running_seconds(page) >= first + 1.0, 10, "the running bar to grow")
    assert kernel_state(jupyter) == "idle"
    view.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "1b-timeline-running.png"), full_page=True)

    # The graph panel mid-run: the waiting task's node is drawn in progress; it turns completed.
    view.locator(".stigmer-panel-select button").nth(2).click()
    node = view.locator(".stigmer-graph svg #node-do-1-pause")
    node.wait_for(timeout=30_000)
    running = graph_node(page, "node-do-1-pause")
    assert running["status"] == "stigmer-in-progress", running
    assert graph_node(page, "node-do-0-greet")["status"] == "stigmer-completed"
    page.screenshot(path=str(ARTIFACTS / "1c-graph-running.png"), full_page=True)
    finished = wait_for(
        lambda: (n := graph_node(page, "node-do-1-pause"))["status"] == "stigmer-completed" and n,
        30,
        "the graph to show the wait completed",
    )
    assert finished["fill"] != running["fill"], (running, finished)
    assert graph_node(page, "node-do-2-group-do-0-inner")["status"] == "stigmer-completed"
    page.screenshot(path=str(ARTIFACTS / "1d-graph-completed.png"), full_page=True)
    view.locator(".stigmer-panel-select button", has_text="Timeline").click()

    # Updates arrive from the lab's thread while the kernel idles (a tab click is a comm message
    # the kernel handles in a moment: it may be busy with that for an instant).
    page.wait_for_selector(".stigmer-view .stigmer-phase[data-phase='EXECUTION_COMPLETED']", timeout=30_000)
    wait_for(lambda: kernel_state(jupyter) == "idle", 10, "the kernel to idle")
    assert "4/4 tasks" in view.locator(".stigmer-progress").inner_text()
    assert '"done": true' in view.locator(".stigmer-output").inner_text()
    assert view.locator(".stigmer-cancel").is_hidden()
    statuses = view.locator(".stigmer-timeline-bar").evaluate_all("bars => bars.map(b => b.dataset.status)")
    assert statuses == ["COMPLETED"] * 4, statuses  # the final timeline, every run ended
    page.screenshot(path=str(ARTIFACTS / "2-completed.png"), full_page=True)

    # The third panel: a task picked in its selector shows its latest run; the graph when drawn.
    view.locator(".stigmer-panel-select button").nth(2).click()
    view.locator(".stigmer-details").wait_for(timeout=15_000)
    assert view.locator(".stigmer-node-select select").is_visible()
    view.locator(".stigmer-node-select select").select_option(label="greet · /do/0/greet")
    details = view.locator(".stigmer-details[data-reference='/do/0/greet']")
    details.wait_for(timeout=15_000)
    assert "hello browser" in details.locator(".stigmer-detail-output").inner_text()
    if importlib.util.find_spec("stigmer_nb.graph") is not None:
        view.locator(".stigmer-graph svg").wait_for(timeout=30_000)
    view.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "2b-graph-panel.png"), full_page=True)

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

    # Readable in both themes: every text of the view and the dashboard contrasts with what is
    # behind it, and the charts are light cards (never transparent, whatever the theme).
    themed = ".stigmer-view, .stigmer-dashboard"
    for theme, light in (("JupyterLab Light", "true"), ("JupyterLab Dark", "false")):
        page.evaluate(f"window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})")
        page.wait_for_function(f"document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
        page.wait_for_timeout(500)  # the theme's stylesheet applies
        texts = readability(page, themed)
        assert len(texts) > 20
        worst = [t for t in texts if t["ratio"] < 3.0]
        assert not worst, f"{theme}: text hard to read: {worst[:5]}"
        charts = page.evaluate(_CHART_PIXELS, ".stigmer-dashboard img")
        assert len(charts) >= 4
        for chart in charts:
            assert chart["inside"][3] == 255 and min(chart["inside"][:3]) >= 240, chart
            assert max(chart["frame"][:3]) < 200, chart  # the grey frame around the light card
    assert page.evaluate("document.body.dataset.jpThemeName") == "JupyterLab Dark"
    dashboard.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "6-dashboard-dark.png"), full_page=True)
    view.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "7-view-dark.png"), full_page=True)
    page.close()
