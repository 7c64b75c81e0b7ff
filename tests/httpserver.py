"""A loopback HTTP server for tests: JSON routes, recorded requests, any status, headers or body."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

__all__ = ["LoopbackServer", "Recorded", "Reply", "free_port"]


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    """Path without the query string."""
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names in lower case; repeated headers joined with ``", "``."""
    body: bytes
    raw_query: str = ""
    """The query string exactly as sent."""

    @property
    def target(self) -> str:
        """Path plus query string, as sent."""
        return self.path + (f"?{self.raw_query}" if self.raw_query else "")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode()


@dataclass(frozen=True)
class Reply:
    """What a route answers: a body that is bytes/str (sent as-is) or anything else (sent as JSON)."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    """Defaults to application/json for JSON bodies and text/plain for str bodies."""
    delay: float = 0.0
    """Seconds to wait before answering (for timeouts and cancellation)."""

    def encoded(self) -> tuple[bytes, str | None]:
        """The body bytes and the content type to send with them."""
        if self.body is None:
            return b"", self.content_type
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), self.content_type or "application/json"


Handler = Callable[[Recorded], Reply]


def free_port() -> int:
    """A loopback port that nothing listens on (for connection-refused tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackServer:
    """Serves routes on 127.0.0.1 at a random port from a background thread; use it as a context manager.

    >>> with LoopbackServer() as server:
    ...     server.route("GET", "/pets", Reply(body=[{"id": 1}]))
    ...     url = server.url("/pets")
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: dict[tuple[str, str], Handler] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LoopbackServer:
        """Bind a random loopback port and serve in a daemon thread."""
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        # A short poll interval keeps stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- routes ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port being served."""
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        """An absolute URL on this server."""
        return self.base + path

    def route(self, method: str, path: str, reply: Reply | Handler | None = None, **fields: Any) -> None:
        """Answer ``method path`` (``*`` matches any method) with ``reply``, a handler, or ``Reply(**fields)``."""
        if reply is None:
            reply = Reply(**fields)
        handler: Handler = reply if callable(reply) else (lambda _req, fixed=reply: fixed)
        with self._lock:
            self._routes[(method.upper(), path)] = handler

    def echo(self, path: str = "/echo") -> None:
        """Answer any method on ``path`` with a JSON description of the request."""

        def describe(req: Recorded) -> Reply:
            return Reply(
                body={
                    "method": req.method,
                    "path": req.path,
                    "query": req.query,
                    "headers": req.headers,
                    "body": req.body.decode(errors="replace"),
                }
            )

        self.route("*", path, describe)

    def openapi(self, path: str, document: Mapping[str, Any], *, as_yaml: bool = False) -> str:
        """Serve an OpenAPI document (JSON or YAML) at ``path``; returns its URL."""
        if as_yaml:
            self.route(
                "GET", path, Reply(body=yaml.safe_dump(dict(document)), content_type="application/yaml")
            )
        else:
            self.route("GET", path, Reply(body=dict(document)))
        return self.url(path)

    def received(self, path: str | None = None) -> list[Recorded]:
        """Requests received so far, optionally only those for ``path``."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def last(self) -> Recorded:
        """The most recent request."""
        with self._lock:
            return self.requests[-1]

    def _answer(self, req: Recorded) -> Reply:
        with self._lock:
            self.requests.append(req)
            handler = self._routes.get((req.method, req.path)) or self._routes.get(("*", req.path))
        if handler is None:
            return Reply(status=404, body={"error": f"no route for {req.method} {req.path}"})
        return handler(req)


def _handler_class(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so stop() never waits on idle keep-alives.
        protocol_version = "HTTP/1.0"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            req = Recorded(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers=_joined(self.headers.items()),
                body=self.rfile.read(length) if length else b"",
                raw_query=parts.query,
            )
            reply = server._answer(req)
            if reply.delay:
                time.sleep(reply.delay)
            body, content_type = reply.encoded()
            self.send_response(reply.status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (cancellation tests)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return _Handler


def _joined(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers
