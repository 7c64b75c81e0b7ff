"""The Temporal Web UI from a notebook: served through jupyter-server-proxy when Jupyter runs us."""

# The embedded server's UI listens on 127.0.0.1 only. A browser reaches it through the Jupyter
# server with jupyter-server-proxy's generic route ``<base_url>proxy/absolute/<port>/``, which
# forwards the full path unchanged; so the UI is started with ``--ui-public-path`` equal to that
# path, and its port has to be chosen before the server starts. ``jupyter_ui_options`` makes both
# choices. ``<base_url>`` is ``/`` for a local JupyterLab and ``/user/<name>/`` on JupyterHub and
# Binder, read from the Jupyter server's runtime file or ``JUPYTERHUB_SERVICE_PREFIX``.

from __future__ import annotations

import contextlib
import html
import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .style import BORDER, MUTED

if TYPE_CHECKING:
    from ..lab import Lab

__all__ = [
    "TemporalUI",
    "jupyter_base_url",
    "jupyter_server_info",
    "jupyter_ui_options",
    "proxy_path",
    "temporal_ui",
]

_PROXIED = re.compile(r"/proxy/absolute/(\d+)/?$")


def jupyter_server_info(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The runtime info (url, base_url, pid, …) of the Jupyter server that started this kernel."""
    env = os.environ if env is None else env
    parent = env.get("JPY_PARENT_PID")
    if not parent or not parent.isdigit():
        return None
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    try:
        for info in list_running_servers():
            if int(info.get("pid", -1)) == int(parent):
                return dict(info)
    except (OSError, ValueError):  # unreadable runtime files: behave as if outside Jupyter
        return None
    return None


def jupyter_base_url(env: Mapping[str, str] | None = None) -> str | None:
    """Base URL of the Jupyter server in front of this kernel, ending in ``/``; None outside one."""
    env = os.environ if env is None else env
    info = jupyter_server_info(env)
    base = info.get("base_url") if info else env.get("JUPYTERHUB_SERVICE_PREFIX")
    if not base:
        return None
    return base if base.endswith("/") else base + "/"


def proxy_path(base_url: str, port: int) -> str:
    """jupyter-server-proxy's path for a local port, with the full path forwarded (no trailing /)."""
    return f"{base_url.rstrip('/')}/proxy/absolute/{port}"


def jupyter_ui_options(ui_port: int | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``Settings`` overrides that serve the embedded UI through jupyter-server-proxy: ``ui_port``
    (``ui_port`` or a free port, chosen now) and the matching ``ui_public_path``. Empty outside a
    Jupyter server, or when jupyter-server-proxy is not installed."""
    base = jupyter_base_url(env)
    if base is None or importlib.util.find_spec("jupyter_server_proxy") is None:
        return {}
    from ..temporal.server import free_port

    port = ui_port or free_port()
    path = proxy_path(base, port)
    # The "Temporal UI" launcher tile (stigmer_nb.widgets.proxy) lists what labs registered.
    from .proxy import register_ui

    with contextlib.suppress(OSError):
        register_ui(port, path)
    return {"ui_port": port, "ui_public_path": path}


@dataclass(frozen=True)
class TemporalUI:
    """A link to the Temporal Web UI, with an inline frame where the browser can load it."""

    url: str
    """Where to point a browser: a path on the Jupyter server when proxied, else the UI itself."""
    direct_url: str | None = None
    """The UI on 127.0.0.1 (works from a browser on this machine)."""
    proxied: bool = False
    """True when served through jupyter-server-proxy (same origin as the notebook)."""
    note: str = ""
    """Why there is no UI, when there is none."""
    iframe: bool = False
    height: int = 600

    def __repr__(self) -> str:
        return self.url or self.note

    def __str__(self) -> str:
        return self.url or self.note

    def _repr_html_(self) -> str:
        if not self.url:
            return f"<span style='{MUTED}'>{html.escape(self.note)}</span>"
        url = html.escape(self.url, quote=True)
        parts = [f"<a href='{url}' target='_blank' rel='noopener'>Temporal Web UI</a>"]
        if self.proxied and self.direct_url:
            direct = html.escape(self.direct_url, quote=True)
            parts.append(
                f" <span style='{MUTED}'>(through Jupyter; directly on this machine: "
                f"<a href='{direct}' target='_blank' rel='noopener'>{direct}</a>)</span>"
            )
        if self.iframe:
            # The UI sends X-Frame-Options: SAMEORIGIN, so it only frames when proxied.
            parts.append(
                f"<iframe class='stigmer-temporal-ui' src='{url}' style='width:100%;height:{self.height}px;"
                f"border:1px solid {BORDER};border-radius:4px;margin-top:4px'></iframe>"
            )
        return "<div class='stigmer-temporal-ui-link'>" + "".join(parts) + "</div>"


def temporal_ui(
    lab: Lab,
    *,
    path: str | None = None,
    iframe: bool | None = None,
    height: int = 600,
) -> TemporalUI:
    """The lab's Temporal Web UI at ``path`` (default: this namespace's workflows). The inline
    frame is shown when the UI is proxied through Jupyter (elsewhere the browser refuses it)."""
    server = lab.server
    settings = lab.settings
    if server is None or not server.ui_port:
        where = settings.temporal_host_port or "the embedded server"
        reason = "the lab uses an existing Temporal server" if server is None else "started with ui=False"
        return TemporalUI(url="", note=f"no embedded Temporal UI ({reason}; Temporal at {where})")
    path = (path or f"namespaces/{settings.namespace}/workflows").lstrip("/")
    public = (settings.ui_public_path or "").rstrip("/")
    direct = f"http://127.0.0.1:{server.ui_port}{public}/{path}"
    match = _PROXIED.search(public)
    proxied = bool(match and int(match.group(1)) == server.ui_port)
    if not proxied:
        return TemporalUI(url=direct, direct_url=direct, iframe=bool(iframe), height=height)
    return TemporalUI(
        url=f"{public}/{path}",
        direct_url=direct,
        proxied=True,
        iframe=True if iframe is None else iframe,
        height=height,
    )
