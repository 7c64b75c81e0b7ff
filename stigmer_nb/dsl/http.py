"""``call: http`` and the request machinery that ``call: openapi`` and script sources share."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookiejar import CookieJar, CookiePolicy
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import httpx
from temporalio.exceptions import ApplicationError

from .activities import effect_error
from .effects import EffectInput

__all__ = [
    # the effect
    "call_http",
    # shared with call: openapi and run: script
    "HttpRequest",
    "MAX_BODY_BYTES",
    "OUTPUTS",
    "auth_headers",
    "authorization",
    "endpoint_parts",
    "expand_template",
    "fetch",
    "flag",
    "new_client",
    "perform",
    "redact_url",
    "resolve_endpoint",
    "scalar_text",
]

MAX_BODY_BYTES = 10 * 1024 * 1024
"""Largest response body read; bigger ones fail rather than exhaust the worker (or Temporal's payloads)."""

OUTPUTS = ("content", "response", "raw")
"""What ``with.output`` may ask for."""

# A slow API may take a while to answer; the activity's own timeout is the real bound.
_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
_TEMPLATE_VAR = re.compile(r"\{([^{}]*)\}")
# Request headers whose values are secrets: never echoed back in outputs or errors.
_SECRET_HEADER = re.compile(r"auth|token|secret|key|password|cookie|session", re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RETRYABLE_STATUS = frozenset({408, 429})
_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class HttpRequest:
    """One request to send: everything ``call: http`` and ``call: openapi`` resolve to."""

    method: str
    url: str
    """Absolute http(s) URL; ``query`` is merged into it."""
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)
    """Values are scalars or lists of scalars (a list repeats the parameter)."""
    body: Any = None
    """None sends nothing; a string is sent as-is; anything else as JSON (or a form, per Content-Type)."""
    authentication: Any = None
    output: str = "content"
    redirect: bool = False


@dataclass(frozen=True)
class _Received:
    """A response read in full (up to the cap), with the request as sent."""

    method: str
    url: str
    request_headers: httpx.Headers
    status: int
    reason: str
    headers: httpx.Headers
    body: bytes


# --- the effect -------------------------------------------------------------------------------


class _NoCookies(CookiePolicy):
    """Accept no cookie and send none (a shared client must not carry sessions between calls)."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


def new_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A pooled client for one worker's calls (``transport`` replaces the network, e.g. in tests).

    It keeps no cookies: one workflow's session must never ride along on another's request.
    """
    return httpx.AsyncClient(
        transport=transport,
        timeout=_TIMEOUT,
        cookies=CookieJar(policy=_NoCookies()),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30),
    )


@contextlib.asynccontextmanager
async def _client(client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """``client``, or a one-off client closed afterwards (a call made outside a worker)."""
    if client is not None:
        yield client
        return
    async with new_client() as own:
        yield own


async def call_http(inp: EffectInput, client: httpx.AsyncClient | None = None) -> Any:
    """``call: http``: send the request ``inp.args`` (the evaluated ``with``) describes; return per ``output``."""
    args = inp.args
    endpoint = args.get("endpoint", args.get("uri"))
    url, endpoint_auth = resolve_endpoint(endpoint, inp.input, what="call: http")
    request = HttpRequest(
        method=_method(args.get("method")),
        url=url,
        headers=_string_map(args.get("headers"), "headers"),
        query=_query_map(args.get("query")),
        body=args.get("body"),
        authentication=endpoint_auth if endpoint_auth is not None else args.get("authentication"),
        output=args.get("output") or "content",
        redirect=flag(args.get("redirect")),
    )
    return await perform(request, client)


async def perform(request: HttpRequest, client: httpx.AsyncClient | None = None) -> Any:
    """Send ``request`` and shape the answer per its ``output``; statuses that are not success raise problems."""
    output = _output_mode(request.output)
    received = await _send(request, client)
    _check_status(received, redirect=request.redirect)
    return _shape(received, output)


async def fetch(
    url: str,
    *,
    authentication: Any = None,
    max_bytes: int | None = None,
    client: httpx.AsyncClient | None = None,
) -> tuple[bytes, str]:
    """The bytes at ``url`` (http(s) following redirects, or ``file:``) and their content type.

    Reads at most ``max_bytes`` (default ``MAX_BODY_BYTES``); a bigger body is a problem.
    """
    if urlsplit(url).scheme == "file":
        return _read_file(url, max_bytes or MAX_BODY_BYTES), ""
    request = HttpRequest("GET", url, authentication=authentication, redirect=True)
    received = await _send(request, client, max_bytes=max_bytes)
    _check_status(received, redirect=True)
    return received.body, received.headers.get("content-type", "")


# --- endpoints and templates --------------------------------------------------------------------


def resolve_endpoint(
    endpoint: Any, variables: Any, *, what: str, schemes: tuple[str, ...] = ("http", "https")
) -> tuple[str, Any]:
    """``(absolute URL, authentication or None)`` from a string/template or an ``{uri, authentication}`` object."""
    location, authentication = endpoint_parts(endpoint, variables, what=what)
    return _absolute_url(location, schemes), authentication


def endpoint_parts(endpoint: Any, variables: Any, *, what: str) -> tuple[str, Any]:
    """``(location with its template filled, authentication or None)``, the location not checked yet."""
    authentication = None
    if isinstance(endpoint, Mapping):
        authentication = endpoint.get("authentication")
        endpoint = endpoint.get("uri")
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise effect_error(
            "configuration",
            f"{what} needs an endpoint: a URL string or {{uri, authentication}}, got {_kind(endpoint)}",
            title="Missing endpoint",
        )
    return expand_template(endpoint.strip(), variables), authentication


def expand_template(template: str, variables: Any) -> str:
    """RFC 6570 simple expansion: ``{var}`` is the top-level key ``var`` of ``variables``, percent-encoded.

    A missing key expands to an empty string; a value that is not a string, number, boolean or null is an
    ``expression`` problem.
    """
    values = variables if isinstance(variables, Mapping) else {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if isinstance(value, Mapping | list | tuple):
            raise effect_error(
                "expression",
                f"URI template variable {{{name}}} is {_kind(value)}; it must be a string, number, boolean or null",
                title="Bad URI template value",
            )
        return quote(scalar_text(value), safe="")

    return _TEMPLATE_VAR.sub(substitute, template)


def scalar_text(value: Any) -> str:
    """A scalar as it goes on the wire: ``true``/``false`` for booleans, empty for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _absolute_url(text: str, schemes: tuple[str, ...]) -> str:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise effect_error(
            "configuration", f"endpoint {redact_url(text)!r} is not a valid URL: {exc}", title="Bad endpoint"
        ) from None
    if url.scheme not in schemes or (url.scheme != "file" and not url.host):
        allowed = "/".join(schemes)
        raise effect_error(
            "configuration",
            f"endpoint {redact_url(text)!r} is not an absolute {allowed} URL",
            title="Bad endpoint",
        )
    return text


def redact_url(url: str) -> str:
    """``url`` with its password and every query value replaced by ``***`` (safe for errors and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}" if ":" in userinfo else netloc
    query = "&".join(f"{pair.split('=', 1)[0]}=***" for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# --- building the request -------------------------------------------------------------------------


def auth_headers(authentication: Any) -> dict[str, str]:
    """The ``Authorization`` header for an inline ``basic`` or ``bearer`` policy (none for None)."""
    if authentication is None:
        return {}
    if isinstance(authentication, str) or (isinstance(authentication, Mapping) and "use" in authentication):
        name = authentication if isinstance(authentication, str) else authentication["use"]
        raise effect_error(
            "configuration",
            f"authentication {name!r} was not resolved; declare it under use.authentications",
            title="Unknown authentication",
        )
    if not isinstance(authentication, Mapping):
        raise effect_error(
            "configuration",
            f"authentication must be an object, got {_kind(authentication)}",
            title="Bad authentication",
        )
    if "basic" in authentication:
        basic = _policy(authentication["basic"], "basic", ("username", "password"))
        token = base64.b64encode(f"{basic['username']}:{basic['password']}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    if "bearer" in authentication:
        bearer = _policy(authentication["bearer"], "bearer", ("token",))
        return {"Authorization": f"Bearer {bearer['token']}"}
    schemes = ", ".join(sorted(str(k) for k in authentication)) or "none"
    raise effect_error(
        "configuration",
        f"authentication scheme {schemes} is not supported; use basic or bearer, or set the header yourself",
        title="Unsupported authentication",
    )


def _policy(value: Any, scheme: str, fields: tuple[str, ...]) -> Mapping[str, Any]:
    if isinstance(value, Mapping) and "use" in value and not all(f in value for f in fields):
        raise effect_error(
            "configuration",
            f"{scheme} authentication refers to secret {value['use']!r}, which was not resolved",
            title="Unknown authentication",
        )
    missing = [f for f in fields if not isinstance(value, Mapping) or value.get(f) is None]
    if missing:
        raise effect_error(
            "configuration",
            f"{scheme} authentication needs {', '.join(missing)}",
            title="Bad authentication",
        )
    return value


async def authorization(authentication: Any, client: httpx.AsyncClient) -> dict[str, str]:
    """The ``Authorization`` header for a policy: basic, bearer, or a token from OAuth2 / OIDC."""
    if isinstance(authentication, Mapping) and any(k in authentication for k in ("oauth2", "oidc")):
        from .oauth import authorization_header

        return await authorization_header(authentication, client) or {}
    return auth_headers(authentication)


async def _request_headers(request: HttpRequest, client: httpx.AsyncClient) -> httpx.Headers:
    auth = await authorization(request.authentication, client)
    # The task's authentication replaces an Authorization header given by hand, whatever its case.
    given = {
        str(k): scalar_text(v)
        for k, v in request.headers.items()
        if str(k).lower() != "authorization" or not auth
    }
    given.update(auth)
    # A list of pairs: unlike item assignment, it accepts bytes values.
    return httpx.Headers([(name, _header_value(name, value)) for name, value in given.items()])


def _header_value(name: str, value: str) -> str | bytes:
    """A checked header value (UTF-8 bytes when not ASCII); errors name the header, never its value."""
    if not _HEADER_NAME.match(name):
        raise effect_error(
            "configuration", f"header name {name!r} is not a valid HTTP token", title="Bad header"
        )
    if any(c in value for c in "\r\n\0"):
        raise effect_error(
            "configuration", f"header {name!r} has a line break or NUL in its value", title="Bad header"
        )
    return value if value.isascii() else value.encode()


def _encode_body(body: Any, headers: httpx.Headers) -> bytes | None:
    """Strings as-is; mappings as a form when Content-Type says so; anything else as JSON."""
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    content_type = headers.get("content-type", "")
    if isinstance(body, Mapping) and content_type.startswith("application/x-www-form-urlencoded"):
        return urlencode({k: _form_value(v) for k, v in body.items()}, doseq=True).encode()
    headers.setdefault("Content-Type", "application/json")
    return json.dumps(body).encode()


def _form_value(value: Any) -> Any:
    return [scalar_text(v) for v in value] if isinstance(value, list | tuple) else scalar_text(value)


def _full_url(request: HttpRequest) -> str:
    if not request.query:
        return request.url
    params = {str(k): _form_value(v) for k, v in request.query.items()}
    return str(httpx.URL(request.url).copy_merge_params(params))


# --- sending ----------------------------------------------------------------------------------------


async def _send(
    request: HttpRequest, client: httpx.AsyncClient | None, *, max_bytes: int | None = None
) -> _Received:
    _absolute_url(request.url, ("http", "https"))
    url = _full_url(request)
    method = request.method.upper()
    async with _client(client) as sender:
        headers = await _request_headers(request, sender)
        content = _encode_body(request.body, headers)
        try:
            async with sender.stream(
                method, url, headers=headers, content=content, follow_redirects=request.redirect
            ) as response:
                body = await _read_capped(response, max_bytes or MAX_BODY_BYTES, method, url)
        except httpx.HTTPError as exc:
            raise _transport_problem(exc, method, url) from None
    return _Received(
        method=method,
        url=url,
        request_headers=headers,
        status=response.status_code,
        reason=response.reason_phrase or _phrase(response.status_code),
        headers=response.headers,
        body=body,
    )


async def _read_capped(response: httpx.Response, max_bytes: int, method: str, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise effect_error(
                "communication",
                f"{method} {redact_url(url)}: response body is larger than {max_bytes} bytes",
                title="Response too large",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _transport_problem(exc: httpx.HTTPError, method: str, url: str) -> ApplicationError:
    """Transport failures are ``communication`` problems; those a retry may cure are retryable."""
    where = f"{method} {redact_url(url)}"
    if isinstance(exc, httpx.TimeoutException):
        return effect_error(
            "communication",
            f"{where} timed out ({type(exc).__name__})",
            status=500,
            title="HTTP timeout",
            retryable=True,
        )
    if isinstance(exc, httpx.TooManyRedirects):
        return effect_error(
            "communication", f"{where}: too many redirects", status=500, title="Too many redirects"
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.DecodingError):
        # Not the exception's text: it may quote a header value.
        return effect_error(
            "communication",
            f"{where}: the request could not be sent ({type(exc).__name__})",
            title="Bad HTTP request",
        )
    title = "Connection failed" if isinstance(exc, httpx.ConnectError) else "HTTP transport error"
    return effect_error(
        "communication", f"{where}: {type(exc).__name__}: {exc}", status=500, title=title, retryable=True
    )


def _check_status(received: _Received, *, redirect: bool) -> None:
    status = received.status
    if 200 <= status < (400 if redirect else 300):
        return
    hint = " (redirects are not followed; set redirect: true to follow them)" if 300 <= status < 400 else ""
    excerpt = _excerpt(received.body)
    detail = f"{received.method} {redact_url(received.url)} answered {status} {received.reason}{hint}"
    raise effect_error(
        "communication",
        detail + (f": {excerpt}" if excerpt else ""),
        status=status,
        title=f"HTTP {status} {received.reason}",
        retryable=_retryable(status),
    )


def _retryable(status: int) -> bool:
    # 501 Not Implemented will not become implemented on retry; other 5xx, 408 and 429 may pass.
    return status in _RETRYABLE_STATUS or (500 <= status < 600 and status != 501)


def _excerpt(body: bytes) -> str:
    text = " ".join(body[: _EXCERPT_CHARS * 4].decode(errors="replace").split())
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _read_file(url: str, max_bytes: int) -> bytes:
    path = Path(unquote(urlsplit(url).path))
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise effect_error(
            "communication", f"cannot read {url}: {exc.strerror or exc}", status=500, title="Read failed"
        ) from None
    if len(data) > max_bytes:
        raise effect_error(
            "communication", f"{url} is larger than {max_bytes} bytes", title="Response too large"
        )
    return data


# --- shaping the output -----------------------------------------------------------------------------


def _output_mode(output: Any) -> str:
    if output in OUTPUTS:
        return str(output)
    from ..errors import did_you_mean

    raise effect_error(
        "configuration",
        f"output {output!r} is not one of {', '.join(OUTPUTS)}{did_you_mean(str(output), OUTPUTS)}",
        title="Bad output",
    )


def _shape(received: _Received, output: str) -> Any:
    if output == "raw":
        return base64.b64encode(received.body).decode("ascii")
    content = _decode(received.body, received.headers)
    if output == "content":
        return content
    return {
        "request": {
            "method": received.method,
            "uri": received.url,
            "headers": _redacted_headers(received.request_headers),
        },
        "statusCode": received.status,
        "headers": dict(received.headers.items()),
        "content": content,
    }


def _decode(body: bytes, headers: httpx.Headers) -> Any:
    """JSON when the response says so (or says nothing and parses), else text; None when empty."""
    if not body:
        return None
    content_type = headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    text = body.decode(_charset(content_type), errors="replace")
    if media == "application/json" or media.endswith("+json") or not media:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _charset(content_type: str) -> str:
    match = re.search(r"charset=\"?([\w.:-]+)", content_type, re.IGNORECASE)
    if match:
        try:
            "".encode(match.group(1))
            return match.group(1)
        except LookupError:
            pass  # an unknown charset: UTF-8 is the best guess
    return "utf-8"


def _redacted_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: ("***" if _SECRET_HEADER.search(k) else v) for k, v in headers.items()}


# --- reading with ---------------------------------------------------------------------------------


def _method(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise effect_error(
            "configuration",
            f"call: http needs a method (get, post, …), got {_kind(value)}",
            title="Missing method",
        )
    return value.strip().upper()


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise effect_error("configuration", f"{what} must be a map, got {_kind(value)}", title=f"Bad {what}")
    return {str(k): scalar_text(v) for k, v in value.items()}


def _query_map(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise effect_error("configuration", f"query must be a map, got {_kind(value)}", title="Bad query")
    return {str(k): v for k, v in value.items() if v is not None}


def flag(value: Any) -> bool:
    """``redirect``-style booleans: true, or the string ``"true"`` in any case."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _kind(value: Any) -> str:
    """How a value reads in a message, without echoing it (it may be a secret)."""
    if value is None:
        return "nothing"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )
