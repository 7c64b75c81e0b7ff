"""The jupyter-server-proxy entry: a "Temporal UI" launcher tile that finds the labs' Web UIs."""

# Each lab started inside Jupyter serves its UI on its own port, through the generic route
# ``<base_url>proxy/absolute/<port>/`` (see ``stigmer_nb.widgets.ui``). That port is only known once
# a lab starts, so the launcher cannot point at it directly: it starts this small index instead
# (jupyter-server-proxy runs ``python -m stigmer_nb.widgets.proxy --port {port}`` on first use),
# which lists the UIs that labs registered in the Jupyter runtime directory and forwards to the
# only one when there is exactly one.

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..temporal.server import pid_alive

__all__ = ["main", "register_ui", "running_uis", "server_proxy_entry"]

_PREFIX = "stigmer_nb-ui-"


def _runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def register_ui(
    port: int, public_path: str, *, pid: int | None = None, runtime_dir: Path | None = None
) -> Path:
    """Record that this process serves a Temporal UI on ``port`` under ``public_path``."""
    folder = runtime_dir or _runtime_dir()
    folder.mkdir(parents=True, exist_ok=True)
    pid = pid or os.getpid()
    path = folder / f"{_PREFIX}{pid}.json"
    path.write_text(json.dumps({"pid": pid, "port": port, "path": public_path}))
    return path


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def running_uis(runtime_dir: Path | None = None) -> list[dict[str, Any]]:
    """Registered UIs whose process lives and whose port answers; stale records are removed."""
    folder = runtime_dir or _runtime_dir()
    found = []
    for path in sorted(folder.glob(f"{_PREFIX}*.json")):
        try:
            info = json.loads(path.read_text())
            pid, port = int(info["pid"]), int(info["port"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not pid_alive(pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        if _listening(port):
            found.append(info)
    return found


def index_html(uis: list[dict[str, Any]], namespace: str = "default") -> str:
    """The index page: links relative to ``<base_url>temporal-ui/``, or a note when none runs."""
    style = "font-family:sans-serif;font-size:14px;margin:2em"
    if not uis:
        return (
            f"<html><body style='{style}'><h3>No Temporal UI yet</h3><p>Start a lab in a notebook "
            "(<code>stigmer_nb.start()</code> or <code>%stigmer start</code>), then reload this page.</p>"
            "</body></html>"
        )
    # The index is served at <base_url>temporal-ui/, the UIs at <base_url>proxy/absolute/<port>/.
    links = [
        f"../proxy/absolute/{int(ui['port'])}/namespaces/{html.escape(namespace)}/workflows" for ui in uis
    ]
    refresh = f"<meta http-equiv='refresh' content='0; url={links[0]}'>" if len(links) == 1 else ""
    items = "".join(
        f"<li><a href='{link}'>Temporal UI of the lab in process {ui['pid']} (port {ui['port']})</a></li>"
        for link, ui in zip(links, uis, strict=True)
    )
    return f"<html><head>{refresh}</head><body style='{style}'><h3>Temporal UIs</h3><ul>{items}</ul></body></html>"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = index_html(running_uis()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: Jupyter's log is not ours
        pass


def main(argv: list[str] | None = None) -> None:
    """Serve the index on 127.0.0.1 (what the launcher entry runs)."""
    parser = argparse.ArgumentParser(prog="python -m stigmer_nb.widgets.proxy")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with ThreadingHTTPServer(("127.0.0.1", args.port), _Handler) as server:
        server.serve_forever()


def server_proxy_entry() -> dict[str, Any]:
    """The ``jupyter_serverproxy_servers`` entry point: the index, behind a launcher tile."""
    return {
        "command": [sys.executable, "-m", "stigmer_nb.widgets.proxy", "--port", "{port}"],
        "timeout": 20,
        "new_browser_tab": True,
        "launcher_entry": {"title": "Temporal UI", "category": "Other"},
    }


if __name__ == "__main__":
    main()
