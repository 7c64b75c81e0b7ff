"""``call: a2a``: one JSON-RPC request to an A2A agent, found through its agent card or at a server URL.

The task's ``with`` (already evaluated) reads::

    method: message/send          # any A2A JSON-RPC method, sent as written
    agentCard: {endpoint: https://agent.example/.well-known/agent-card.json}
    # or server: https://agent.example/rpc | {uri, authentication}   (ignored when agentCard is set)
    parameters: {message: {parts: [{kind: text, text: Hello}]}}
    timeout: PT30S                # optional (not in the DSL); default 120 s

``agentCard`` may name the card itself (a URL ending in ``.json``) or the agent's base URL, under which
``/.well-known/agent-card.json`` (then the older ``agent.json``) is looked up. The card is read with
a2a-sdk, which understands both the 0.3 layout (``url``) and the 1.0 one (``supportedInterfaces``); the
request goes to its JSON-RPC interface. For ``message/send`` and ``message/stream`` the message's
``messageId`` defaults to a UUID and its ``role`` to ``user``, as the DSL requires.

The output is the JSON-RPC ``result`` as the agent sent it; for the streaming methods
(``message/stream``, ``tasks/resubscribe``) it is the list of every streamed result, in order.
Failures of the exchange are ``runtime`` problems; a bad ``with`` is a ``configuration`` one.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from temporalio.exceptions import ApplicationError

from .activities import effect_error, effect_timeout
from .effects import EffectInput
from .http import MAX_BODY_BYTES, auth_headers, redact_url, resolve_endpoint

if TYPE_CHECKING:
    from a2a.types.a2a_pb2 import AgentCard

__all__ = [
    "METHODS",
    "STREAMING_METHODS",
    "call_a2a",
]


METHODS = (
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/list",
    "tasks/cancel",
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
)
"""The methods the DSL names (A2A 0.3 spellings). Others, such as 1.0's ``SendMessage``, go as written."""

STREAMING_METHODS = frozenset(
    {"message/stream", "tasks/resubscribe", "SendStreamingMessage", "SubscribeToTask"}
)
"""Methods answered with a server-sent event stream; their output is the list of results."""

# Methods whose message gets the DSL's defaults, and the role each protocol version spells "user" with.
_MESSAGE_ROLES = {
    "message/send": "user",
    "message/stream": "user",
    "SendMessage": "ROLE_USER",
    "SendStreamingMessage": "ROLE_USER",
}
_WELL_KNOWN = ("/.well-known/agent-card.json", "/.well-known/agent.json")
_CONNECT_SECONDS = 10.0
_TEXT_CHARS = 300


@dataclass(frozen=True)
class _Target:
    """Where the JSON-RPC request goes, and what the card said about it."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    protocol_version: str = ""
    """The interface's A2A version from the card ('' when the server was given directly)."""


@dataclass(frozen=True)
class _Call:
    """A ``with`` read and checked: exactly one of ``card_url`` and ``server`` is set."""

    method: str
    parameters: Any
    card_url: str | None
    card_headers: Mapping[str, str]
    server: _Target | None
    timeout: float


# --- the effect -------------------------------------------------------------------------------------


async def call_a2a(inp: EffectInput) -> Any:
    """``call: a2a``: find the agent, send ``method`` with ``parameters``; return the JSON-RPC result."""
    call = _read_call(inp.args, inp.input)
    limits = httpx.Timeout(call.timeout, connect=min(_CONNECT_SECONDS, call.timeout))
    try:
        async with asyncio.timeout(call.timeout), httpx.AsyncClient(timeout=limits) as client:
            target = call.server or await _discover(client, call.card_url or "", call)
            return await _send(client, target, call)
    except TimeoutError:
        raise effect_error(
            "timeout",
            f"A2A {call.method} did not finish within {call.timeout:g} s",
            title="A2A call timed out",
        ) from None


# --- the agent card ------------------------------------------------------------------------------------


async def _discover(client: httpx.AsyncClient, card_url: str, call: _Call) -> _Target:
    """The JSON-RPC interface of the card at (or under) ``card_url``, read with a2a-sdk's card resolver."""
    from a2a.client import A2ACardResolver, AgentCardResolutionError

    tried: list[str] = []
    for url in _card_candidates(card_url):
        parts = urlsplit(url)
        base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        resolver = A2ACardResolver(client, base)
        try:
            card = await resolver.get_agent_card(
                relative_card_path=path or "/",
                http_kwargs={"headers": dict(call.card_headers), "follow_redirects": True},
            )
        except AgentCardResolutionError as exc:
            if exc.status_code == HTTPStatus.NOT_FOUND:
                tried.append(redact_url(url))
                continue
            raise _card_problem(exc, url) from None
        except Exception as exc:  # anything else the SDK raises: the card is unusable, say so in one line
            raise _card_problem(exc, url) from None
        return _interface(card, url, call)
    raise effect_error(
        "runtime",
        f"no A2A agent card found (tried {', '.join(tried)})",
        title="A2A agent card not found",
    )


def _card_candidates(url: str) -> list[str]:
    """The card URL itself when it names a ``.json`` file, else the well-known places under it."""
    parts = urlsplit(url)
    if parts.path.endswith(".json"):
        return [url]
    root = parts.path.rstrip("/")
    return [urlunsplit((parts.scheme, parts.netloc, root + known, parts.query, "")) for known in _WELL_KNOWN]


def _card_problem(exc: Exception, url: str) -> ApplicationError:
    """A card that could not be read; the resolver's own text is not reused (it quotes the full URL)."""
    cause = exc.__cause__
    where = f"A2A agent card at {redact_url(url)}"
    if isinstance(cause, httpx.ConnectError):
        return effect_error(
            "runtime", f"cannot connect to {where}", title="A2A connection failed", retryable=True
        )
    if isinstance(cause, httpx.TimeoutException):
        return effect_error("timeout", f"{where} did not answer in time", title="A2A call timed out")
    status = getattr(exc, "status_code", None)
    if status:
        reason = _phrase(status)
        return effect_error(
            "runtime", f"{where} answered HTTP {status} {reason}".rstrip(), title="A2A card error"
        )
    if isinstance(cause, httpx.HTTPError):
        return effect_error("runtime", f"{where}: {type(cause).__name__}", title="A2A card error")
    return effect_error("runtime", f"{where} is not a valid agent card", title="A2A card error")


def _interface(card: AgentCard, card_url: str, call: _Call) -> _Target:
    """The JSON-RPC interface to call, preferring the protocol version ``call.method`` is spelled in."""
    jsonrpc = [i for i in card.supported_interfaces if i.protocol_binding.upper() == "JSONRPC" and i.url]
    if not jsonrpc:
        offered = sorted({i.protocol_binding for i in card.supported_interfaces if i.protocol_binding})
        raise effect_error(
            "runtime",
            f"A2A agent card at {redact_url(card_url)} offers no JSON-RPC interface"
            + (f" (only {', '.join(offered)})" if offered else ""),
            title="A2A agent card unusable",
        )
    wanted = "0." if "/" in call.method else "1."
    chosen = next((i for i in jsonrpc if i.protocol_version.startswith(wanted)), jsonrpc[0])
    url = urljoin(card_url, chosen.url)
    # The card's credentials go to the agent only when it lives where the card does.
    same_origin = urlsplit(url)[:2] == urlsplit(card_url)[:2]
    return _Target(
        url=url, headers=call.card_headers if same_origin else {}, protocol_version=chosen.protocol_version
    )


# --- the request -----------------------------------------------------------------------------------------


async def _send(client: httpx.AsyncClient, target: _Target, call: _Call) -> Any:
    """POST the JSON-RPC request; the result, or every streamed result."""
    streaming = call.method in STREAMING_METHODS
    body = {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": call.method, "params": call.parameters}
    headers = {
        "Accept": "text/event-stream" if streaming else "application/json",
        "Content-Type": "application/json",
        **target.headers,
    }
    if "/" not in call.method:
        headers.setdefault("A2A-Version", "1.0")  # 1.0's methods are refused without it
    where = f"A2A agent at {redact_url(target.url)}"
    try:
        async with client.stream("POST", target.url, content=json.dumps(body), headers=headers) as response:
            if streaming and response.headers.get("content-type", "").startswith("text/event-stream"):
                return [_result(message, target, call) async for message in _events(response, where)]
            raw = await _read(response, where)
    except httpx.ConnectError as exc:
        raise effect_error(
            "runtime",
            f"cannot connect to {where}: {_one_line(str(exc))}",
            title="A2A connection failed",
            retryable=True,
        ) from None
    except httpx.TimeoutException:
        raise effect_error(
            "timeout", f"{where} did not answer {call.method} in time", title="A2A call timed out"
        ) from None
    except httpx.HTTPError as exc:
        raise effect_error("runtime", f"{where}: {type(exc).__name__}", title="A2A transport error") from None
    message = _decode(raw, response.status_code, where)
    result = _result(message, target, call)
    return [result] if streaming else result


async def _read(response: httpx.Response, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise effect_error(
                "runtime", f"{where} answered more than {MAX_BODY_BYTES} bytes", title="A2A reply too large"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _events(response: httpx.Response, where: str) -> AsyncIterator[Any]:
    """The JSON messages of a server-sent event stream (``data:`` lines, one event per blank line)."""
    data: list[str] = []
    size = 0
    async for line in response.aiter_lines():
        size += len(line) + 1
        if size > MAX_BODY_BYTES:
            raise effect_error(
                "runtime", f"{where} streamed more than {MAX_BODY_BYTES} bytes", title="A2A reply too large"
            )
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line.strip() and data:
            yield _json(("\n".join(data)).encode(), where)
            data = []
    if data:
        yield _json(("\n".join(data)).encode(), where)


def _decode(raw: bytes, status: int, where: str) -> Any:
    """The JSON-RPC response in ``raw``; an HTTP error that carries none is a problem of its own."""
    try:
        message = json.loads(raw)
    except ValueError:
        message = None
    if isinstance(message, Mapping) and ("result" in message or "error" in message):
        return message  # a JSON-RPC error may come with any HTTP status
    if not 200 <= status < 300:
        raise effect_error(
            "runtime", f"{where} answered HTTP {status} {_phrase(status)}".rstrip(), title="A2A HTTP error"
        )
    if message is None:
        raise effect_error("runtime", f"{where} did not answer with JSON", title="A2A protocol error")
    return message


def _json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise effect_error(
            "runtime", f"{where} streamed an event that is not JSON", title="A2A protocol error"
        ) from None


def _result(message: Any, target: _Target, call: _Call) -> Any:
    """``result`` of one JSON-RPC response; its ``error`` as a problem."""
    where = f"A2A agent at {redact_url(target.url)}"
    if not isinstance(message, Mapping) or ("result" not in message and "error" not in message):
        raise effect_error(
            "runtime", f"{where} did not answer with a JSON-RPC response", title="A2A protocol error"
        )
    error = message.get("error")
    if error is None:
        return message.get("result")
    code = error.get("code") if isinstance(error, Mapping) else None
    text = _one_line(str(error.get("message", ""))) if isinstance(error, Mapping) else _one_line(str(error))
    detail = f"{where} answered {call.method} with error {code}: {text}"
    if code == -32601:
        detail += _method_hint(call.method, target)
    raise effect_error("runtime", detail, title="A2A error")


def _method_hint(method: str, target: _Target) -> str:
    from ..errors import did_you_mean

    if method not in METHODS and "/" in method:
        return did_you_mean(method, METHODS)
    if "/" in method and target.protocol_version.startswith("1."):
        return "; the agent speaks A2A 1.0, whose methods are named SendMessage, GetTask, …"
    return ""


# --- reading with -------------------------------------------------------------------------------------


def _read_call(args: Mapping[str, Any], variables: Any) -> _Call:
    """Check ``with`` before anything is sent; problems here are ``configuration`` ones."""
    method = args.get("method")
    if not isinstance(method, str) or not method.strip():
        raise _config(f"call: a2a needs a method (e.g. message/send), got {_kind(method)}", "Missing method")
    method = method.strip()
    parameters = args.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise _config(f"parameters must be an object, got {_kind(parameters)}", "Bad parameters")
    card = args.get("agentCard")
    server = args.get("server")
    if card is None and server is None:
        raise _config("call: a2a needs agentCard or server", "Missing agent")
    card_url: str | None = None
    card_headers: dict[str, str] = {}
    target: _Target | None = None
    if card is not None:
        endpoint = card.get("endpoint") if isinstance(card, Mapping) else card
        card_url, auth = resolve_endpoint(endpoint, variables, what="call: a2a agentCard")
        card_headers = auth_headers(auth)
    else:
        url, auth = resolve_endpoint(server, variables, what="call: a2a server")
        target = _Target(url=url, headers=auth_headers(auth))
    return _Call(
        method=method,
        parameters=_with_defaults(method, dict(parameters)),
        card_url=card_url,
        card_headers=card_headers,
        server=target,
        timeout=effect_timeout(args.get("timeout")),
    )


def _with_defaults(method: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The DSL's defaults for a message to send: a fresh ``messageId`` and the user's ``role``."""
    role = _MESSAGE_ROLES.get(method)
    message = parameters.get("message")
    if role is None or not isinstance(message, Mapping):
        return parameters
    filled = dict(message)
    filled.setdefault("messageId", str(uuid.uuid4()))
    filled.setdefault("role", role)
    return {**parameters, "message": filled}


def _config(detail: str, title: str) -> ApplicationError:
    return effect_error("configuration", detail, title=title)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _TEXT_CHARS else line[:_TEXT_CHARS] + "…"


def _kind(value: Any) -> str:
    """How a value reads in a message, without echoing it (it may be a secret)."""
    if value is None:
        return "nothing"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )
