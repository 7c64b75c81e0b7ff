"""The Temporal UI link: proxied through Jupyter when a Jupyter server with server-proxy runs us."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from stigmer_nb.settings import Settings
from stigmer_nb.widgets.ui import jupyter_base_url, jupyter_ui_options, proxy_path, temporal_ui


@pytest.fixture
def jupyter_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A runtime file for a 'Jupyter server' (this process) at /user/ada/; the env a kernel gets."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    info = {
        "base_url": "/user/ada/",
        "pid": os.getpid(),
        "port": 8888,
        "url": "http://127.0.0.1:8888/user/ada/",
    }
    info |= {"hostname": "127.0.0.1", "secure": False, "token": "", "root_dir": str(tmp_path), "version": "2"}
    (tmp_path / f"jpserver-{os.getpid()}.json").write_text(json.dumps(info))
    return {"JPY_PARENT_PID": str(os.getpid())}


def fake_lab(settings: Settings, ui_port: int | None = 8233) -> SimpleNamespace:
    server = SimpleNamespace(ui_port=ui_port, target="127.0.0.1:7233")
    return SimpleNamespace(settings=settings, server=server)


def test_the_base_url_comes_from_the_jupyter_server_or_jupyterhub(jupyter_server: dict[str, str]) -> None:
    assert jupyter_base_url(jupyter_server) == "/user/ada/"
    assert jupyter_base_url({"JUPYTERHUB_SERVICE_PREFIX": "/user/bob"}) == "/user/bob/"
    assert jupyter_base_url({}) is None  # a plain Python process: no proxy


def test_ui_options_match_the_proxy_route(jupyter_server: dict[str, str]) -> None:
    options = jupyter_ui_options(9100, jupyter_server)
    assert options == {"ui_port": 9100, "ui_public_path": "/user/ada/proxy/absolute/9100"}
    chosen = jupyter_ui_options(None, {"JUPYTERHUB_SERVICE_PREFIX": "/"})
    assert chosen["ui_public_path"] == f"/proxy/absolute/{chosen['ui_port']}"
    assert jupyter_ui_options(None, {}) == {}
    assert proxy_path("/", 1) == "/proxy/absolute/1"


def test_a_proxied_ui_is_linked_and_framed() -> None:
    settings = Settings.from_env({}, ui_port=8233, ui_public_path="/user/ada/proxy/absolute/8233")
    ui = temporal_ui(fake_lab(settings))  # type: ignore[arg-type]
    assert ui.proxied and ui.url == "/user/ada/proxy/absolute/8233/namespaces/default/workflows"
    assert ui.direct_url == "http://127.0.0.1:8233/user/ada/proxy/absolute/8233/namespaces/default/workflows"
    html = ui._repr_html_()
    assert "<iframe" in html and f"src='{ui.url}'" in html
    assert repr(ui) == ui.url


def test_a_direct_ui_is_linked_without_a_frame() -> None:
    ui = temporal_ui(fake_lab(Settings.from_env({})), path="/namespaces/default/schedules")  # type: ignore[arg-type]
    assert not ui.proxied and ui.url == "http://127.0.0.1:8233/namespaces/default/schedules"
    assert "<iframe" not in ui._repr_html_()  # X-Frame-Options: SAMEORIGIN would refuse it


def test_no_ui_says_why() -> None:
    external = SimpleNamespace(settings=Settings.from_env({"TEMPORAL_HOST_PORT": "h:7233"}), server=None)
    ui = temporal_ui(external)  # type: ignore[arg-type]
    assert ui.url == "" and "existing Temporal server" in repr(ui) and "h:7233" in ui._repr_html_()
    headless = temporal_ui(fake_lab(Settings.from_env({}), ui_port=None))  # type: ignore[arg-type]
    assert "ui=False" in repr(headless)


def test_the_launcher_index_lists_registered_uis(jupyter_server: dict[str, str], tmp_path: Path) -> None:
    import socket
    import threading
    import urllib.request
    from http.server import ThreadingHTTPServer

    from stigmer_nb.widgets import proxy

    assert "Start a lab" in proxy.index_html([])
    with socket.socket() as ui:  # a "UI" that listens
        ui.bind(("127.0.0.1", 0))
        ui.listen()
        port = ui.getsockname()[1]
        options = jupyter_ui_options(port, jupyter_server)  # registers the UI as a lab start would
        proxy.register_ui(port + 1, "/gone", pid=2**22 + 12345)  # a dead lab's record
        assert [u["port"] for u in proxy.running_uis()] == [port]
        assert not list(tmp_path.glob("stigmer_nb-ui-4206649.json"))  # stale record removed
        server = ThreadingHTTPServer(("127.0.0.1", 0), proxy._Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            with urllib.request.urlopen(url, timeout=5) as response:
                page = response.read().decode()
        finally:
            server.shutdown()
            server.server_close()
    link = f"../proxy/absolute/{port}/namespaces/default/workflows"
    assert options["ui_public_path"].endswith(f"/proxy/absolute/{port}")
    assert f"url={link}" in page and f"href='{link}'" in page  # one UI: forwarded to it
    entry = proxy.server_proxy_entry()
    assert entry["command"][-2:] == ["--port", "{port}"] and entry["launcher_entry"]["title"] == "Temporal UI"
