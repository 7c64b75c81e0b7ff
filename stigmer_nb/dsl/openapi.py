"""``call: openapi``: find an operation in an OpenAPI document and send it with ``call: http``'s machinery."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from ..errors import DSLValidationError, StigmerError
from .activities import effect_error
from .document import load_yaml
from .effects import EffectInput
from .http import (
    HttpRequest,
    expand_template,
    fetch,
    flag,
    perform,
    redact_url,
    resolve_endpoint,
    scalar_text,
)

__all__ = [
    "Operation",
    "build_request",
    "call_openapi",
    "clear_cache",
    "find_operation",
    "load_document",
]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_CACHE_SIZE = 64
_JSON_MEDIA = re.compile(r"^application/(?:[\w.+-]*\+)?json\b", re.IGNORECASE)
_FORM_MEDIA = "application/x-www-form-urlencoded"
_SERVER_VAR = re.compile(r"\{([^{}]*)\}")

# Documents by URL, newest last: a workflow calling one API many times fetches its document once.
_documents: OrderedDict[str, dict[str, Any]] = OrderedDict()


@dataclass(frozen=True)
class Operation:
    """One operation of a document, with path-level parameters merged in and ``$ref`` resolved."""

    operation_id: str
    method: str
    path: str
    parameters: tuple[Mapping[str, Any], ...] = ()
    request_body: Mapping[str, Any] | None = None
    servers: tuple[Any, ...] = field(default=())
    """The operation's or path item's own ``servers`` (empty: the document's)."""


async def call_openapi(inp: EffectInput, client: httpx.AsyncClient | None = None) -> Any:
    """``call: openapi``: load ``with.document``, find ``operationId`` and send it with ``parameters``."""
    args = inp.args
    document_url, document_auth = _document_endpoint(args.get("document"), inp.input)
    operation_id = args.get("operationId")
    if not isinstance(operation_id, str) or not operation_id:
        raise effect_error("configuration", "call: openapi needs an operationId", title="Missing operationId")
    parameters = args.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise effect_error("configuration", "call: openapi parameters must be a map", title="Bad parameters")
    document = await load_document(document_url, authentication=document_auth, client=client)
    operation = find_operation(document, operation_id, where=redact_url(document_url))
    request = build_request(
        document,
        document_url,
        operation,
        parameters,
        authentication=args.get("authentication"),
        output=args.get("output") or "content",
        redirect=flag(args.get("redirect")),
    )
    return await perform(request, client)


# --- the document -----------------------------------------------------------------------------------


async def load_document(
    url: str, *, authentication: Any = None, client: httpx.AsyncClient | None = None
) -> dict[str, Any]:
    """The OpenAPI document at ``url`` (JSON or YAML), fetched once per URL in this process."""
    cached = _documents.get(url)
    if cached is not None:
        _documents.move_to_end(url)
        return cached
    body, _ = await fetch(url, authentication=authentication, client=client)
    document = _parse_document(body, url)
    _documents[url] = document
    while len(_documents) > _CACHE_SIZE:
        _documents.popitem(last=False)
    return document


def clear_cache() -> None:
    """Forget every fetched document (tests; a document that changed while the lab ran)."""
    _documents.clear()


_MAX_DOCUMENT_NODES = 1_000_000
"""Most values an OpenAPI document may expand to: large specs hold some 100,000s, alias bombs more."""


def _parse_document(body: bytes, url: str) -> dict[str, Any]:
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        try:
            # Read like workflow documents (YAML 1.2: a path item's `on`-like keys stay strings).
            document = load_yaml(text, f"the document at {redact_url(url)}", max_nodes=_MAX_DOCUMENT_NODES)
        except DSLValidationError as exc:
            raise effect_error(
                "configuration",
                f"the document at {redact_url(url)} is neither JSON nor YAML: {exc.report().splitlines()[0]}",
                title="Bad OpenAPI document",
            ) from None
        except StigmerError as exc:  # too deep, too many values (aliases), not JSON-compatible
            raise effect_error("configuration", str(exc), title="Bad OpenAPI document") from None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), Mapping):
        raise effect_error(
            "configuration",
            f"the document at {redact_url(url)} is not an OpenAPI document (it has no paths)",
            title="Bad OpenAPI document",
        )
    return document


def _document_endpoint(document: Any, variables: Any) -> tuple[str, Any]:
    endpoint = document.get("endpoint", document.get("uri")) if isinstance(document, Mapping) else document
    return resolve_endpoint(
        endpoint, variables, what="call: openapi document", schemes=("http", "https", "file")
    )


def _resolve(document: Mapping[str, Any], node: Any) -> Any:
    """Follow local ``$ref`` pointers (``#/components/...``); other references are not supported."""
    for _ in range(32):  # a bound, in case refs form a cycle
        if not isinstance(node, Mapping) or not isinstance(node.get("$ref"), str):
            return node
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise effect_error(
                "configuration", f"$ref {ref!r} points outside the document; only local refs are supported"
            )
        node = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            raise effect_error("configuration", f"$ref {ref!r} points nowhere in the document")
    raise effect_error("configuration", "$ref chain too deep (a cycle?)")


# --- the operation ----------------------------------------------------------------------------------


def find_operation(
    document: Mapping[str, Any], operation_id: str, *, where: str = "the document"
) -> Operation:
    """The operation with ``operationId``; a ``configuration`` problem (with a did-you-mean) when absent."""
    known: list[str] = []
    for path, raw_item in (document.get("paths") or {}).items():
        item = _resolve(document, raw_item)
        if not isinstance(item, Mapping):
            continue
        for method in _METHODS:
            spec = item.get(method)
            if not isinstance(spec, Mapping) or not spec.get("operationId"):
                continue
            known.append(str(spec["operationId"]))
            if spec["operationId"] == operation_id:
                return Operation(
                    operation_id=operation_id,
                    method=method.upper(),
                    path=str(path),
                    parameters=_parameters(document, item.get("parameters"), spec.get("parameters")),
                    request_body=_resolve(document, spec.get("requestBody")),
                    servers=tuple(spec.get("servers") or item.get("servers") or ()),
                )
    from ..errors import did_you_mean

    raise effect_error(
        "configuration",
        f"no operation {operation_id!r} in {where}{did_you_mean(operation_id, known)}",
        title="Unknown operation",
    )


def _parameters(document: Mapping[str, Any], *levels: Any) -> tuple[Mapping[str, Any], ...]:
    """Path-item then operation parameters; the operation's win on the same (name, in)."""
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for level in levels:
        for raw in level or ():
            param = _resolve(document, raw)
            if isinstance(param, Mapping) and "name" in param:
                merged[(str(param["name"]), str(param.get("in", "query")))] = param
    return tuple(merged.values())


# --- the request ------------------------------------------------------------------------------------


@dataclass
class _Placement:
    """Where each given parameter goes."""

    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)
    form: dict[str, Any] = field(default_factory=dict)
    body: Any = None


def build_request(
    document: Mapping[str, Any],
    document_url: str,
    operation: Operation,
    parameters: Mapping[str, Any],
    *,
    authentication: Any = None,
    output: str = "content",
    redirect: bool = False,
) -> HttpRequest:
    """The HTTP request for ``operation`` with ``parameters`` placed in path, query, headers or body."""
    remaining = dict(parameters)
    placed = _place(operation, remaining)
    body, content_type = _body(operation, placed, remaining)
    headers = dict(placed.headers)
    if placed.cookies:
        headers["Cookie"] = "; ".join(placed.cookies)
    if content_type and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    return HttpRequest(
        method=operation.method,
        url=_base_url(document, document_url, operation) + expand_template(operation.path, placed.path),
        headers=headers,
        query=placed.query,
        body=body,
        authentication=authentication,
        output=output,
        redirect=redirect,
    )


def _place(operation: Operation, remaining: dict[str, Any]) -> _Placement:
    """Move every declared parameter out of ``remaining`` into its place; missing required ones fail."""
    placed = _Placement()
    missing: list[str] = []
    for param in operation.parameters:
        name, where = str(param["name"]), str(param.get("in", "query"))
        if name not in remaining:
            if param.get("required") or where == "path":
                missing.append(f"{name} (in {where})")
            continue
        value = remaining.pop(name)
        if where == "path":
            placed.path[name] = value
        elif where == "query":
            # OpenAPI's default for objects is form style, exploded: each key is its own parameter.
            placed.query.update(value if isinstance(value, Mapping) else {name: value})
        elif where == "header":
            placed.headers[name] = scalar_text(value)
        elif where == "cookie":
            placed.cookies.append(f"{name}={scalar_text(value)}")
        elif where == "body":  # Swagger 2.0
            placed.body = value
        elif where == "formData":  # Swagger 2.0
            placed.form[name] = value
    if missing:
        from ..errors import did_you_mean

        hint = did_you_mean(missing[0].split(" ", 1)[0], remaining)
        raise effect_error(
            "configuration",
            f"operation {operation.operation_id!r} needs parameter {', '.join(missing)}{hint}",
            title="Missing parameter",
        )
    return placed


def _body(operation: Operation, placed: _Placement, remaining: dict[str, Any]) -> tuple[Any, str | None]:
    """The request body and its media type: ``body``, form fields, or the parameters left over."""
    media = _media_type(operation.request_body)
    body = placed.body
    if placed.form:
        body, media = placed.form, _FORM_MEDIA
    if body is None and "body" in remaining:
        body = remaining.pop("body")
    if body is None and remaining and media and (_JSON_MEDIA.match(media) or media == _FORM_MEDIA):
        body, remaining = dict(remaining), {}
    if remaining:
        from ..errors import did_you_mean

        name = sorted(remaining)[0]
        declared = [str(p["name"]) for p in operation.parameters]
        raise effect_error(
            "configuration",
            f"operation {operation.operation_id!r} has no parameter {name!r}{did_you_mean(name, declared)}",
            title="Unknown parameter",
        )
    required = isinstance(operation.request_body, Mapping) and operation.request_body.get("required")
    if body is None and required:
        raise effect_error(
            "configuration",
            f"operation {operation.operation_id!r} needs a request body; pass it as the parameter `body`",
            title="Missing parameter",
        )
    return body, (media if body is not None else None)


def _media_type(request_body: Any) -> str | None:
    """The request body's media type to send: JSON if offered, else a form, else the first listed."""
    content = request_body.get("content") if isinstance(request_body, Mapping) else None
    if not isinstance(content, Mapping) or not content:
        return None
    types = [str(t) for t in content]
    for media in types:
        if _JSON_MEDIA.match(media):
            return media
    if _FORM_MEDIA in types:
        return _FORM_MEDIA
    return None if types[0] == "*/*" else types[0]


def _base_url(document: Mapping[str, Any], document_url: str, operation: Operation) -> str:
    """``servers[0].url`` resolved against the document's URL; without servers, the document's origin."""
    servers = operation.servers or tuple(document.get("servers") or ())
    first = servers[0] if servers and isinstance(servers[0], Mapping) else {}
    if first.get("url"):
        base = _server_url(first)
    elif document.get("swagger") and (document.get("host") or document.get("basePath")):
        parts = urlsplit(document_url)
        scheme = (document.get("schemes") or [parts.scheme])[0]
        base = f"{scheme}://{document.get('host') or parts.netloc}{document.get('basePath') or ''}"
    else:
        base = "/"
    return urljoin(document_url, base).rstrip("/")


def _server_url(server: Mapping[str, Any]) -> str:
    """A server URL with its ``{variables}`` set to their defaults (not percent-encoded: they are URL parts)."""
    variables = server.get("variables") if isinstance(server.get("variables"), Mapping) else {}

    def default(match: re.Match[str]) -> str:
        spec = variables.get(match.group(1))
        return scalar_text(spec.get("default")) if isinstance(spec, Mapping) else ""

    return _SERVER_VAR.sub(default, str(server["url"]))
