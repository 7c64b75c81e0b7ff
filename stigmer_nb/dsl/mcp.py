"""``call: mcp``: one JSON-RPC request to a Model Context Protocol server, over stdio or streamable HTTP.

The task's ``with`` (already evaluated) reads::

    method: tools/call            # any MCP method; initialize is sent first in every case
    parameters: {name: add, arguments: {a: 1, b: 2}}
    protocolVersion: '2025-06-18' # the default
    transport:
      stdio: {command: python, arguments: [server.py], environment: {TOKEN: x}}
      # or http: {endpoint: https://host/mcp | {uri, authentication}, headers: {...}}
    client: {name: my-app, version: '1.0'}   # optional
    timeout: PT30S                           # optional, ISO 8601 or {seconds: 30}; default 120 s

The output is the JSON-RPC result as the server sent it (camelCase keys). Every failure of the
exchange is a ``runtime`` problem with a one-line detail; a bad ``with`` is a ``configuration``
problem, and running out of time a ``timeout`` one.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, TypeVar

from temporalio.exceptions import ApplicationError

from .. import __version__
from .activities import effect_error, effect_timeout
from .effects import EffectInput
from .http import auth_headers, redact_url, resolve_endpoint, scalar_text

if TYPE_CHECKING:
    from mcp.client.session import ClientSession

__all__ = [
    "DEFAULT_PROTOCOL_VERSION",
    "METHODS",
    "call_mcp",
]

DEFAULT_PROTOCOL_VERSION = "2025-06-18"
"""``protocolVersion`` when the task gives none (the DSL's default)."""


METHODS = (
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "completion/complete",
    "logging/setLevel",
)
"""Methods the MCP specification defines for clients; others are sent as written (for suggestions only)."""

_CLIENT_NAME = "stigmer-nb"
# After a native cancel (Temporal cancelling the activity), the most we wait for the SDK to stop the
# server: its own shutdown is bounded by about 6 s (stdin close, SIGTERM, SIGKILL).
_CLEANUP_SECONDS = 10.0
_CONNECT_SECONDS = 10.0
_TEXT_CHARS = 300
_STDERR_TAIL_BYTES = 4096
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Stdio:
    command: str
    arguments: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        # The program only: arguments and environment may carry secrets.
        return f"MCP server {self.command!r}"


@dataclass(frozen=True)
class _Http:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"MCP server at {redact_url(self.url)}"


@dataclass(frozen=True)
class _Call:
    """A ``with`` read and checked: everything one call needs."""

    method: str
    parameters: dict[str, Any] | None
    protocol_version: str
    transport: _Stdio | _Http
    client_name: str
    client_version: str
    timeout: float


@dataclass
class _Progress:
    """How far the exchange got, for errors that say where it broke."""

    stage: str = "start-up"
    stderr: IO[str] | None = None
    """A stdio server's stderr, captured."""


# --- the effect -------------------------------------------------------------------------------------


async def call_mcp(inp: EffectInput) -> Any:
    """``call: mcp``: start or reach the server, ``initialize``, send ``method``; return its JSON-RPC result."""
    call = _read_call(inp.args, inp.input)
    return await _cancel_safe(lambda: _bounded(call))


async def _cancel_safe(run: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``run()`` in its own task, so a native cancel still lets the SDK stop a stdio server.

    The SDK's shutdown is shielded from anyio cancellation only; an asyncio ``Task.cancel`` (how
    Temporal cancels an activity) would cut it short and leave the server running. Here the outer
    cancel becomes an anyio cancel of the inner task, which is then given time to clean up.
    """
    import anyio

    scope = anyio.CancelScope()

    async def inner() -> _T:
        with scope:
            return await run()
        raise asyncio.CancelledError  # the scope was cancelled from outside: nothing to return

    task = asyncio.ensure_future(inner())
    # Its outcome is read below or deliberately dropped on cancel; never a "never retrieved" warning.
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        scope.cancel()
        await asyncio.wait({task}, timeout=_CLEANUP_SECONDS)
        raise


async def _bounded(call: _Call) -> Any:
    """The exchange under ``call.timeout``, with every failure turned into a problem."""
    import anyio

    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as stderr:
        progress = _Progress(stderr=stderr)
        try:
            with anyio.move_on_after(call.timeout):
                return await _exchange(call, progress)
        except Exception as exc:
            raise _problem(exc, call, progress) from None
        raise effect_error(
            "timeout",
            f"{call.transport.describe()} did not finish {call.method} within {call.timeout:g} s "
            f"(stuck in {progress.stage}){_stderr_hint(progress)}",
            title="MCP call timed out",
        )


async def _exchange(call: _Call, progress: _Progress) -> Any:
    """Connect, ``initialize`` (or ``server/discover`` for 2026+ versions), then send the request."""
    from mcp.client.session import ClientSession

    async with _connect(call, progress) as (read, write), ClientSession(read, write) as session:
        progress.stage = "initialize"
        greeting = await _initialize(session, call)
        if call.method == "initialize":
            return greeting
        progress.stage = call.method
        result = await _request(session, call.method, call.parameters)
    if call.method == "tools/call" and isinstance(result, dict) and result.get("isError") is True:
        name = (call.parameters or {}).get("name")
        text = _tool_text(result)
        raise effect_error(
            "runtime",
            f"MCP tool {name!r} failed" + (f": {text}" if text else " (no error text)"),
            title="MCP tool error",
        )
    return result


def _connect(call: _Call, progress: _Progress) -> AbstractAsyncContextManager[tuple[Any, Any]]:
    """The SDK's transport for ``call.transport``, yielding its (read, write) streams."""
    transport = call.transport
    if isinstance(transport, _Http):
        return _http_streams(transport, call.timeout)
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=transport.command, args=list(transport.arguments), env=dict(transport.environment)
    )
    # The server's stderr goes to a file, whose last line explains a failure better than a traceback.
    return stdio_client(params, errlog=progress.stderr) if progress.stderr else stdio_client(params)


@asynccontextmanager
async def _http_streams(transport: _Http, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    """``streamable_http_client`` over an ``httpx2`` client that carries the task's headers."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    limits = httpx2.Timeout(min(_CONNECT_SECONDS, timeout), read=timeout)
    async with (
        httpx2.AsyncClient(headers=dict(transport.headers), timeout=limits) as client,
        streamable_http_client(transport.url, http_client=client) as streams,
    ):
        yield streams


async def _initialize(session: ClientSession, call: _Call) -> dict[str, Any]:
    """The handshake at ``call.protocol_version``; the raw ``initialize`` (or ``server/discover``) result."""
    import mcp_types as types
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    if call.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
        # 2026-07-28 and later replace initialize with server/discover.
        raw = await session.send_discover(call.protocol_version)
        session.adopt(types.DiscoverResult.model_validate(raw, by_name=False))
        return raw
    params: dict[str, Any] = {
        "protocolVersion": call.protocol_version,
        "capabilities": {},
        "clientInfo": {"name": call.client_name, "version": call.client_version},
    }
    if call.method == "initialize" and call.parameters:
        params.update(call.parameters)
    raw = await _request(session, "initialize", params)
    result = types.InitializeResult.model_validate(raw, by_name=False)
    if result.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
        raise effect_error(
            "runtime",
            f"{call.transport.describe()} answered initialize with protocolVersion "
            f"{result.protocol_version!r}, which this client does not speak",
            title="MCP version mismatch",
        )
    session.adopt(result)
    await session.send_notification(types.InitializedNotification())
    return raw


async def _request(session: ClientSession, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Send ``method`` as written and return the raw result (the SDK still checks results it knows)."""
    import mcp_types as types
    from pydantic import TypeAdapter

    request = types.Request[dict[str, Any] | None, str](method=method, params=params)
    return await session.send_request(request, TypeAdapter(dict[str, Any]))  # type: ignore[arg-type]


def _tool_text(result: Mapping[str, Any]) -> str:
    """A tool result's text content on one line, shortened."""
    content = result.get("content")
    parts = [
        str(item.get("text"))
        for item in (content if isinstance(content, list) else [])
        if isinstance(item, Mapping) and item.get("type") == "text"
    ]
    return _one_line(" ".join(parts))


# --- failures ------------------------------------------------------------------------------------------


def _problem(exc: BaseException, call: _Call, progress: _Progress) -> ApplicationError:
    """The problem for whatever broke the exchange (often deep inside an exception group)."""
    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, ApplicationError):
            return leaf  # raised on purpose, already a problem
    leaf = _most_telling(leaves) or exc
    where = call.transport.describe()
    stage = progress.stage
    import httpx2
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED, METHOD_NOT_FOUND
    from pydantic import ValidationError

    if isinstance(leaf, MCPError) and leaf.code == CONNECTION_CLOSED:
        detail = f"{where} closed the connection during {stage}" + _stderr_hint(progress)
        return effect_error("runtime", detail, title="MCP connection closed")
    if isinstance(leaf, MCPError):
        detail = f"{where} answered {stage} with error {leaf.code}: {_one_line(leaf.message)}"
        if leaf.code == METHOD_NOT_FOUND and stage == call.method and call.method not in METHODS:
            from ..errors import did_you_mean

            detail += did_you_mean(call.method, METHODS)
        return effect_error("runtime", detail, title="MCP error")
    if isinstance(leaf, httpx2.ConnectError | httpx2.ConnectTimeout):
        return effect_error(
            "runtime",
            f"cannot connect to {where}: {_one_line(str(leaf)) or type(leaf).__name__}",
            title="MCP connection failed",
            retryable=True,
        )
    if isinstance(leaf, httpx2.HTTPError):
        return effect_error(
            "runtime",
            f"{where} failed during {stage}: {type(leaf).__name__}: {_one_line(str(leaf))}",
            title="MCP transport error",
        )
    if isinstance(leaf, OSError) and stage == "start-up" and isinstance(call.transport, _Stdio):
        hint = ""
        if leaf.errno == 2 and " " in call.transport.command.strip():
            hint = "; command names one executable: put its arguments under arguments"
        reason = leaf.strerror or _one_line(str(leaf))
        return effect_error(
            "runtime", f"cannot start {where}: {reason}{hint}", title="MCP server did not start"
        )
    if isinstance(leaf, ValidationError):
        first = leaf.errors()[0] if leaf.errors() else {}
        location = ".".join(str(p) for p in first.get("loc", ())) or "result"
        return effect_error(
            "runtime",
            f"{where} sent a malformed {stage} result ({location}: {first.get('msg', 'invalid')})",
            title="MCP protocol error",
        )
    return effect_error(
        "runtime",
        f"{where} failed during {stage}: {type(leaf).__name__}: {_one_line(str(leaf))}"
        + _stderr_hint(progress),
        title="MCP error",
    )


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _most_telling(leaves: list[BaseException]) -> BaseException | None:
    """The leaf that explains the failure: a transport error before the closed session it caused."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED

    def rank(leaf: Exception) -> int:
        if isinstance(leaf, MCPError):
            return 2 if leaf.code == CONNECTION_CLOSED else 1
        return 0 if isinstance(leaf, OSError) or type(leaf).__module__.startswith("httpx2") else 1

    errors = [leaf for leaf in leaves if isinstance(leaf, Exception)]
    return min(errors, key=rank) if errors else None


def _stderr_hint(progress: _Progress) -> str:
    """``; stderr: <last line>`` from a stdio server's captured stderr, if it said anything."""
    stream = progress.stderr
    if stream is None:
        return ""
    try:
        stream.flush()
        size = stream.seek(0, 2)
        stream.seek(max(0, size - _STDERR_TAIL_BYTES))
        lines = [line.strip() for line in stream.read().splitlines() if line.strip()]
    except (OSError, ValueError):
        return ""
    return f"; stderr: {_one_line(lines[-1])}" if lines else ""


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= _TEXT_CHARS else line[:_TEXT_CHARS] + "…"


# --- reading with -------------------------------------------------------------------------------------


def _read_call(args: Mapping[str, Any], variables: Any) -> _Call:
    """Check ``with`` before anything starts; problems here are ``configuration`` ones."""
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

    method = args.get("method")
    if not isinstance(method, str) or not method.strip():
        raise _config(f"call: mcp needs a method (e.g. tools/call), got {_kind(method)}", "Missing method")
    parameters = args.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise _config(f"parameters must be an object, got {_kind(parameters)}", "Bad parameters")
    version = args.get("protocolVersion") or DEFAULT_PROTOCOL_VERSION
    known = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
    if version not in known:
        raise _config(
            f"protocolVersion {version!r} is not one this runtime speaks ({', '.join(known)})",
            "Unsupported MCP version",
        )
    name, version_label = _client(args.get("client"))
    return _Call(
        method=method.strip(),
        parameters=dict(parameters) if parameters is not None else None,
        protocol_version=str(version),
        transport=_transport(args, variables),
        client_name=name,
        client_version=version_label,
        timeout=effect_timeout(args.get("timeout")),
    )


def _transport(args: Mapping[str, Any], variables: Any) -> _Stdio | _Http:
    transport = args.get("transport")
    if transport is None and args.get("server") is not None:
        # Drafts of the 1.0.x DSL wrote `server: {endpoint}` for the HTTP transport.
        server = args["server"]
        transport = {"http": server if isinstance(server, Mapping) else {"endpoint": server}}
    if not isinstance(transport, Mapping) or ("stdio" in transport) == ("http" in transport):
        raise _config(
            "call: mcp needs transport with exactly one of stdio: {command, arguments, environment} "
            "or http: {endpoint, headers}",
            "Bad transport",
        )
    if "stdio" in transport:
        return _stdio(transport["stdio"])
    return _http(transport["http"], variables)


def _stdio(spec: Any) -> _Stdio:
    if not isinstance(spec, Mapping):
        raise _config(f"transport.stdio must be an object, got {_kind(spec)}", "Bad transport")
    command = spec.get("command")
    if not isinstance(command, str) or not command.strip():
        raise _config(f"transport.stdio needs a command, got {_kind(command)}", "Missing command")
    arguments = spec.get("arguments") or []
    if not isinstance(arguments, list | tuple):
        raise _config(f"transport.stdio.arguments must be a list, got {_kind(arguments)}", "Bad arguments")
    return _Stdio(
        command=command.strip(),
        arguments=tuple(scalar_text(a) for a in arguments),
        environment=_string_map(spec.get("environment"), "transport.stdio.environment"),
    )


def _http(spec: Any, variables: Any) -> _Http:
    if not isinstance(spec, Mapping):
        raise _config(f"transport.http must be an object, got {_kind(spec)}", "Bad transport")
    url, authentication = resolve_endpoint(spec.get("endpoint"), variables, what="call: mcp transport.http")
    given = _string_map(spec.get("headers"), "transport.http.headers")
    auth = auth_headers(authentication)
    # The endpoint's authentication wins over an Authorization header given by hand, whatever its case.
    headers = {k: v for k, v in given.items() if k.lower() != "authorization" or not auth}
    headers.update(auth)
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or any(c in value for c in "\r\n\0"):
            raise _config(f"header {name!r} is not a valid HTTP header", "Bad header")
    return _Http(url=url, headers=headers)


def _client(spec: Any) -> tuple[str, str]:
    if spec is None:
        return _CLIENT_NAME, __version__
    if not isinstance(spec, Mapping) or not spec.get("name") or not spec.get("version"):
        raise _config("client must be an object with a name and a version", "Bad client")
    return scalar_text(spec["name"]), scalar_text(spec["version"])


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _config(f"{what} must be a map, got {_kind(value)}", "Bad map")
    return {str(k): scalar_text(v) for k, v in value.items()}


def _config(detail: str, title: str) -> ApplicationError:
    return effect_error("configuration", detail, title=title)


def _kind(value: Any) -> str:
    """How a value reads in a message, without echoing it (it may be a secret)."""
    if value is None:
        return "nothing"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )
