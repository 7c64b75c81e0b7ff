"""The process's lab: ``start``, ``astart`` and ``current``.

Kept apart from ``lab`` so that ``start`` can launch the embedded server before the heavy imports
(temporalio, DuckDB, the DSL engine): the server boots in its own process while they load, which
is most of a cold start.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LabStateError
from .settings import Settings

if TYPE_CHECKING:
    from .lab import Lab

__all__ = ["astart", "current", "start"]

_current: Lab | None = None
_lock = threading.Lock()


def start(*, home: str | Path | None = None, **options: Any) -> Lab:
    """Start the lab (or return the one already running in this process)."""
    global _current
    settings = Settings.from_env(home=home, **options)
    with _lock:
        if _current is not None and _current.running:
            if home is None or Path(home).resolve() == _current.settings.home.resolve():
                return _current
            raise LabStateError(
                f"a lab is already running on {_current.settings.home}; call lab.stop() before "
                f"starting one on {home}"
            )
        server = None
        if settings.embedded:
            if settings.ui and not settings.ui_public_path:
                # Inside JupyterLab (or Binder) the UI is served through jupyter-server-proxy.
                from .widgets.ui import jupyter_ui_options

                settings = settings.replace(**jupyter_ui_options(settings.ui_port))
            from .temporal.server import EmbeddedServer

            server = EmbeddedServer.launch(settings)
        try:
            from .lab import Lab  # the heavy imports, while the server boots
        except BaseException:
            if server is not None:
                server.stop_blocking()
            raise
        _current = Lab.create(settings, server=server)
        return _current


async def astart(*, home: str | Path | None = None, **options: Any) -> Lab:
    """Async twin of ``start`` (``lab = await stigmer_nb.astart()``)."""
    return await asyncio.to_thread(start, home=home, **options)


def current() -> Lab | None:
    """The running lab of this process, if any."""
    return _current


def forget(lab: Lab) -> None:
    """Called by ``Lab.stop``: ``lab`` is no longer the process's lab."""
    global _current
    with _lock:
        if _current is lab:
            _current = None


def _stop_at_exit() -> None:
    lab = _current
    if lab is not None:
        with contextlib.suppress(Exception):
            lab.stop()


# Thread-exit hooks run before concurrent.futures refuses new work at interpreter exit (the
# workers need their executors to drain); plain atexit hooks would run too late.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_stop_at_exit)
else:  # pragma: no cover - older interpreters
    atexit.register(_stop_at_exit)
