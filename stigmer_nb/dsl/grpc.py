"""``call: grpc``: compile the task's ``.proto`` at run time and make one unary call with ``grpc.aio``.

The proto (a local path, ``file://`` URI or http(s) URL) is compiled with ``grpc_tools.protoc`` into a
``FileDescriptorSet``; message classes are built from it with ``google.protobuf``'s descriptor pool, so
no generated code is ever written or imported. Compiled protos are cached by their text's hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
import httpx
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from temporalio.exceptions import ApplicationError

from ..errors import did_you_mean
from .activities import effect_error, effect_timeout
from .effects import EffectInput
from .http import auth_headers, endpoint_parts, fetch, redact_url

__all__ = [
    # the effect
    "call_grpc",
    # compiling protos (servers in tests are built from the same classes)
    "CompiledProto",
    "clear_cache",
    "compile_proto",
    # limits and mappings
    "MAX_PROTO_BYTES",
    "STATUS_BY_CODE",
]


MAX_PROTO_BYTES = 2 * 1024 * 1024
"""Largest ``.proto`` read; imports other than the well-known types count separately."""

STATUS_BY_CODE: Mapping[grpc.StatusCode, int] = {
    # The mapping grpc-gateway uses, so a problem's status reads like the HTTP API's would.
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
"""HTTP status of the ``communication`` problem for each gRPC status code (500 for any other)."""

_CACHE_SIZE = 64
_PROTO_NAME = re.compile(r"^[\w.-]+\.proto$")
_DEFAULT_PROTO_NAME = "service.proto"

# Compiled protos by (text hash, include dir), newest last; _cache_lock is only ever held briefly,
# so the event loop may take it. _compile_lock serialises protoc: it is CPU-bound anyway, and its
# in-process entry point is not documented as thread-safe.
_compiled: OrderedDict[tuple[str, str], CompiledProto] = OrderedDict()
_cache_lock = threading.Lock()
_compile_lock = threading.Lock()


# --- the effect -------------------------------------------------------------------------------


async def call_grpc(inp: EffectInput, client: httpx.AsyncClient | None = None) -> Any:
    """``call: grpc``: compile ``with.proto``, call ``service``/``method`` with ``arguments``; return the reply."""
    args = inp.args
    service = args.get("service")
    if not isinstance(service, Mapping):
        raise effect_error(
            "configuration",
            f"call: grpc needs service: {{name, host, port}}, got {_kind(service)}",
            title="Missing service",
        )
    target = _target(service.get("host"), service.get("port"))
    authentication = service.get("authentication", args.get("authentication"))
    metadata = _metadata(authentication)
    timeout = effect_timeout(args.get("timeout"))

    text, file_name, include, source = await _load_proto(args.get("proto"), inp.input, client)
    compiled = _cached(text, include) or await asyncio.to_thread(
        compile_proto, text, file_name=file_name, include=include
    )
    method = compiled.method(service.get("name"), args.get("method"), source=source)
    request = _request(compiled, method.input_type, args.get("arguments"))
    response_class = compiled.message_class(method.output_type.full_name)
    response = await _invoke(target, method, request, response_class, metadata, timeout)
    return json_format.MessageToDict(response, preserving_proto_field_name=True)


async def _invoke(
    target: str,
    method: MethodDescriptor,
    request: Message,
    response_class: type[Message],
    metadata: Sequence[tuple[str, str]],
    timeout: float,
) -> Message:
    """One unary call on a fresh channel; RPC failures become ``communication`` problems."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        # A channel per call: grpc.aio channels belong to the event loop that made them.
        async with grpc.aio.insecure_channel(target) as channel:
            stub = channel.unary_unary(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_class.FromString,
            )
            response: Message = await stub(request, metadata=tuple(metadata), timeout=timeout)
            return response
    except grpc.aio.AioRpcError as exc:
        raise _rpc_problem(exc, f"{path[1:]} at {target}") from None


def _rpc_problem(exc: grpc.aio.AioRpcError, where: str) -> ApplicationError:
    code = exc.code()
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    details = " ".join((exc.details() or "").split())
    return effect_error(
        "communication",
        f"{where} failed with {name}" + (f": {details}" if details else ""),
        status=STATUS_BY_CODE.get(code, 500),
        title=f"gRPC {name}",
        # Only an unavailable server (down, refusing, restarting) may answer on a later attempt.
        retryable=code is grpc.StatusCode.UNAVAILABLE,
    )


# --- compiling protos ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CompiledProto:
    """A compiled ``.proto`` and its imports: descriptors to look up, message classes to build."""

    file_name: str
    """Name of the main file inside the compiled set (what protoc's messages call it)."""
    pool: descriptor_pool.DescriptorPool
    services: tuple[str, ...]
    """Full names of every service the proto and its imports define."""

    def service(self, name: Any, *, source: str = "the proto") -> ServiceDescriptor:
        """The service ``name`` (full, or unqualified when that is unambiguous); a problem if absent."""
        if not isinstance(name, str) or not name.strip():
            raise effect_error(
                "configuration",
                f"call: grpc needs service.name, got {_kind(name)}",
                title="Missing service name",
            )
        name = name.strip()
        full = name if name in self.services else None
        if full is None:
            short = [s for s in self.services if s.rsplit(".", 1)[-1] == name]
            full = short[0] if len(short) == 1 else None
        if full is None:
            defined = ", ".join(self.services) or "no services"
            raise effect_error(
                "configuration",
                f"service {name!r} is not in {source}, which defines {defined}"
                + did_you_mean(name, self.services),
                title="Unknown gRPC service",
            )
        return self.pool.FindServiceByName(full)

    def method(self, service: Any, name: Any, *, source: str = "the proto") -> MethodDescriptor:
        """A unary method of ``service``; a problem if absent or streaming."""
        found = self.service(service, source=source)
        if not isinstance(name, str) or not name.strip():
            raise effect_error(
                "configuration", f"call: grpc needs a method, got {_kind(name)}", title="Missing method"
            )
        name = name.strip()
        method = found.methods_by_name.get(name)
        if method is None:
            known = sorted(found.methods_by_name)
            raise effect_error(
                "configuration",
                f"service {found.full_name} has no method {name!r}; it has {', '.join(known) or 'none'}"
                + did_you_mean(name, known),
                title="Unknown gRPC method",
            )
        if method.client_streaming or method.server_streaming:
            kind = {
                (True, False): "client-streaming",
                (False, True): "server-streaming",
                (True, True): "bidirectional-streaming",
            }[(method.client_streaming, method.server_streaming)]
            raise effect_error(
                "configuration",
                f"{found.full_name}.{name} is a {kind} method; call: grpc supports only unary methods",
                title="Streaming gRPC method",
            )
        return method

    def message_class(self, full_name: str) -> type[Message]:
        """The Python class of message ``full_name`` (e.g. ``greeter.HelloRequest``)."""
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))


def compile_proto(
    text: str, *, file_name: str = _DEFAULT_PROTO_NAME, include: str | None = None
) -> CompiledProto:
    """Compile ``text`` (once per distinct text and ``include``); protoc's errors are a configuration problem.

    ``include`` is a directory searched for the proto's imports (its own directory, for a local file);
    the well-known ``google/protobuf/*.proto`` are always available. CPU-bound: call it off the event loop.
    """
    with _compile_lock:
        # Checked under the compile lock: a call that waited on the same text finds it compiled.
        found = _cached(text, include)
        if found is not None:
            return found
        name = file_name if _PROTO_NAME.match(file_name) else _DEFAULT_PROTO_NAME
        descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(_run_protoc(text, name, include))
        compiled = _build(descriptor_set, name)
        with _cache_lock:
            _compiled[_key(text, include)] = compiled
            while len(_compiled) > _CACHE_SIZE:
                _compiled.popitem(last=False)
        return compiled


def clear_cache() -> None:
    """Forget every compiled proto (tests; a proto whose imports changed while the lab ran)."""
    with _cache_lock:
        _compiled.clear()


def _cached(text: str, include: str | None) -> CompiledProto | None:
    """The compiled proto when already cached: a hit needs no thread hop."""
    key = _key(text, include)
    with _cache_lock:
        found = _compiled.get(key)
        if found is not None:
            _compiled.move_to_end(key)
        return found


def _key(text: str, include: str | None) -> tuple[str, str]:
    return hashlib.sha256(text.encode()).hexdigest(), include or ""


def _run_protoc(text: str, file_name: str, include: str | None) -> bytes:
    """The serialized ``FileDescriptorSet`` of ``text`` (saved as ``file_name``) with all its imports."""
    from grpc_tools import protoc  # only on a cache miss: the compiler is a large extension module

    with tempfile.TemporaryDirectory(prefix="stigmer-grpc-") as tmp:
        source = Path(tmp) / file_name
        source.write_text(text, encoding="utf-8")
        out = Path(tmp) / "descriptor_set.pb"
        # The temporary copy comes first, so the proto's own directory (if any) cannot shadow it.
        includes = [tmp, *([include] if include else []), _well_known_protos()]
        code = protoc.main(
            [
                "grpc_tools.protoc",
                *(f"--proto_path={path}" for path in includes),
                "--include_imports",
                f"--descriptor_set_out={out}",
                str(source),
            ]
        )
        if code != 0 or not out.exists():
            raise effect_error(
                "configuration",
                f"the proto does not compile: {_protoc_errors(file_name, includes) or f'protoc exit code {code}'}",
                title="Bad proto",
            )
        return out.read_bytes()


def _protoc_errors(file_name: str, includes: Sequence[str]) -> str:
    """protoc's messages, which ``protoc.main`` only prints to the process's stderr.

    The in-process code generator raises them instead, so compiling again on this (error) path
    recovers them; it is a private API, hence the fallback to nothing.
    """
    try:
        from grpc_tools import _protoc_compiler

        _protoc_compiler.get_protos(file_name.encode(), [path.encode() for path in includes])
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            return ""
        return "; ".join(_protoc_error(error) for error in errors())
    return ""


def _protoc_error(error: Any) -> str:
    """``file:line:column: message`` (1-based, as protoc prints it)."""
    file_name, message = _text(error.filename), _text(error.message)
    line, column = int(error.line), int(error.column)
    return f"{file_name}:{line + 1}:{column + 1}: {message}" if line >= 0 else f"{file_name}: {message}"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _well_known_protos() -> str:
    """grpc_tools' bundled ``google/protobuf/*.proto``, so ``import "google/protobuf/…"`` resolves."""
    return str(resources.files("grpc_tools") / "_proto")


def _build(descriptor_set: descriptor_pb2.FileDescriptorSet, file_name: str) -> CompiledProto:
    # A pool of its own: two protos may define the same names differently.
    pool = descriptor_pool.DescriptorPool()
    services: list[str] = []
    for file in descriptor_set.file:  # protoc lists imports before the files that need them
        pool.Add(file)
        prefix = f"{file.package}." if file.package else ""
        services.extend(prefix + service.name for service in file.service)
    return CompiledProto(file_name=file_name, pool=pool, services=tuple(services))


# --- loading the proto --------------------------------------------------------------------------


async def _load_proto(
    proto: Any, variables: Any, client: httpx.AsyncClient | None
) -> tuple[str, str, str | None, str]:
    """``(text, file name, include dir or None, source for messages)`` of ``with.proto``."""
    endpoint = proto.get("endpoint", proto.get("uri")) if isinstance(proto, Mapping) else proto
    location, authentication = endpoint_parts(
        endpoint, variables, what="call: grpc proto (a path, file:// URI or http(s) URL)"
    )
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    include: str | None = None
    if scheme in ("http", "https"):
        url, path = location, Path(unquote(parts.path))
    elif scheme == "file":
        path = Path(unquote(parts.path))
        url, include = location, str(path.parent)
    elif not scheme:
        path = Path(location).expanduser().resolve()
        url, include = path.as_uri(), str(path.parent)
    else:
        raise effect_error(
            "configuration",
            f"proto endpoint {redact_url(location)!r} is not a local path, file:// URI or http(s) URL",
            title="Bad proto endpoint",
        )
    body, _ = await fetch(url, authentication=authentication, max_bytes=MAX_PROTO_BYTES, client=client)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise effect_error(
            "configuration", f"the proto at {redact_url(url)} is not UTF-8 text", title="Bad proto"
        ) from None
    return text, path.name or _DEFAULT_PROTO_NAME, include, f"the proto at {redact_url(url)}"


# --- reading with -------------------------------------------------------------------------------


def _target(host: Any, port: Any) -> str:
    """``host:port`` for the channel; a port may also ride on the host (``localhost:50051``)."""
    if not isinstance(host, str) or not host.strip():
        raise effect_error(
            "configuration", f"call: grpc needs service.host, got {_kind(host)}", title="Missing host"
        )
    host = host.strip()
    if "/" in host or "@" in host:
        raise effect_error(
            "configuration",
            f"service.host must be a host name or address, not a URL (got {redact_url(host)!r})",
            title="Bad host",
        )
    if port is None:
        name, sep, tail = host.rpartition(":")
        if sep and tail.isdigit() and name and (":" not in name or name.endswith("]")):
            host, port = name, tail
        else:
            raise effect_error("configuration", "call: grpc needs service.port", title="Missing port")
    number = int(port) if isinstance(port, str) and port.strip().isdigit() else port
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
        raise effect_error(
            "configuration", f"service.port must be a port number, got {port!r}", title="Bad port"
        )
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"{host}:{number}"


def _metadata(authentication: Any) -> tuple[tuple[str, str], ...]:
    """Call metadata for an inline ``basic`` or ``bearer`` policy (gRPC wants lower-case keys)."""
    if isinstance(authentication, Mapping) and not {"basic", "bearer", "use"} & set(authentication):
        schemes = ", ".join(sorted(str(k) for k in authentication)) or "none"
        raise effect_error(
            "configuration",
            f"authentication scheme {schemes} is not supported by call: grpc; use basic or bearer",
            title="Unsupported authentication",
        )
    return tuple((name.lower(), value) for name, value in auth_headers(authentication).items())


def _request(compiled: CompiledProto, descriptor: Descriptor, arguments: Any) -> Message:
    """``arguments`` as a ``descriptor`` message (proto3 JSON mapping: field or JSON names)."""
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise effect_error(
            "configuration",
            f"call: grpc arguments must be an object, got {_kind(arguments)}",
            title="Bad arguments",
        )
    fields = [field.name for field in descriptor.fields]
    known = set(fields) | {field.json_name for field in descriptor.fields}
    unknown = [str(key) for key in arguments if key not in known]
    if unknown:
        # Checked here for a friendlier message than ParseError's (nested fields still get that one).
        raise effect_error(
            "configuration",
            f"{descriptor.full_name} has no field {unknown[0]!r}; its fields are {', '.join(fields) or 'none'}"
            + did_you_mean(unknown[0], fields),
            title="Unknown gRPC argument",
        )
    message = compiled.message_class(descriptor.full_name)()
    try:
        json_format.ParseDict(dict(arguments), message)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise effect_error(
            "configuration",
            f"arguments do not fit {descriptor.full_name}: {detail}",
            title="Bad gRPC arguments",
        ) from None
    return message


def _kind(value: Any) -> str:
    """How a value reads in a message, without echoing it (it may be a secret)."""
    if value is None:
        return "nothing"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )
