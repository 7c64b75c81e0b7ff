"""``call``: HTTP, OpenAPI, gRPC, MCP, A2A, agents, Python functions and ``use.functions``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ...errors import did_you_mean
from .. import effects
from ..check import describe, is_int
from ..document import pointer_join
from ..expressions import is_expression
from ..model import CallSpec
from ..problems import WorkflowProblem
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]

_RESERVED_CALLS = ("http", "openapi", "grpc", "asyncapi", "a2a", "mcp")
_WRAP = "wrap the client in a Python function (lab.register_function) and call it by name"
_UNSUPPORTED_CALLS = {"asyncapi": _WRAP}
_CALL_NEEDS = {
    "http": ": {method, endpoint}",
    "openapi": ": {document, operationId}",
    "grpc": ": {proto, service, method}",
    "mcp": ": {method, transport}",
    "a2a": ": {method, agentCard or server}",
    "agent": ": {agent, message}",
    "activity": ": {name, input}",
}
_HTTP_WITH = ("method", "endpoint", "headers", "body", "query", "output", "redirect")
_HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options", "trace", "connect")
_OPENAPI_WITH = ("document", "operationId", "parameters", "authentication", "output", "redirect")
_GRPC_WITH = ("proto", "service", "method", "arguments", "authentication")
_GRPC_SERVICE = ("name", "host", "port", "authentication")
_MCP_WITH = ("method", "parameters", "protocolVersion", "transport", "server", "client", "timeout")
_MCP_TRANSPORTS = ("stdio", "http")
_A2A_WITH = ("method", "agentCard", "server", "parameters", "timeout")
_AGENT_WITH = ("agent", "message", "scope", "env", "config")
_AGENT_CONFIG = ("model", "timeout", "temperature")
_ACTIVITY_WITH = ("name", "input", "arguments")
_CALL_OUTPUT = ("content", "response", "raw")
_ENDPOINT_HINT = "; the address goes in `endpoint` (a URL string or {uri, authentication})"
_HTTP_HINTS = {
    "url": _ENDPOINT_HINT,
    "uri": _ENDPOINT_HINT,
    "params": "; use `query`",
    "json": "; use `body`",
    "data": "; use `body`",
    "timeout": "; set `timeout: {after: ...}` on the task",
}
_SELF_TIMED = ("grpc", "mcp", "a2a")
_SELF_TIMED_MARGIN = timedelta(seconds=15)
_STIGMER_HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
_BUILTIN = {
    "http": effects.CALL_HTTP,
    "openapi": effects.CALL_OPENAPI,
    "grpc": effects.CALL_GRPC,
    "mcp": effects.CALL_MCP,
    "a2a": effects.CALL_A2A,
    "agent": effects.CALL_AGENT,
    "activity": effects.CALL_FUNCTION,
}


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> CallSpec:
    """``call: http|openapi|grpc|asyncapi|a2a|mcp|agent|activity`` or a function by name.

    A function name need not be in ``use.functions``: notebooks register Python functions at run
    time, so an unknown name is left for the runtime to resolve.
    """
    call = body["call"]
    with_ = body.get("with")
    node = CallSpec(call=str(call), with_=with_ if isinstance(with_, Mapping) else {})
    if not c.string(pointer_join(pointer, "call"), call, "call"):
        return node
    if call in _UNSUPPORTED_CALLS:
        # Refused here, not at run time: nothing is stored or started for a run that cannot work.
        c.add(pointer_join(pointer, "call"), f"call: {call} is not supported by stigmer_nb; "
                 f"{_UNSUPPORTED_CALLS[call]}", title="Not supported")  # fmt: skip
        return node
    with_ptr = pointer_join(pointer, "with")
    if with_ is None:
        if call in (*_RESERVED_CALLS, "agent", "activity"):
            c.add(pointer, f"call: {call} needs `with`{_CALL_NEEDS.get(call, '')}")
        return node
    with_ = c.mapping(with_ptr, with_, f"the `with` of call: {call}")
    if with_ is None:
        return node
    checker = {
        "http": _call_http,
        "openapi": _call_openapi,
        "grpc": _call_grpc,
        "mcp": _call_mcp,
        "a2a": _call_a2a,
        "agent": _call_agent,
        "activity": _call_activity,
    }.get(call)
    if checker is not None:
        checker(c, with_ptr, with_, scope)
    c.expression(with_ptr, with_, bare=False, names=scope.names)
    return node


def _call_http(c: Checker, pointer: str, with_: Mapping[str, Any], scope: Scope) -> None:
    c.keys(pointer, with_, _HTTP_WITH, "the `with` of call: http", _HTTP_HINTS)
    if c.need(pointer, with_, "method", "call: http `with`"):
        method, ptr = with_["method"], pointer_join(pointer, "method")
        if not isinstance(method, str):
            c.add(ptr, f"method must be a string like get or post, not {describe(method)}")
        elif not is_expression(method) and method.lower() not in _HTTP_METHODS:
            hint = did_you_mean(method.lower(), _HTTP_METHODS)
            c.add(ptr, f"{method!r} is not an HTTP method{hint}")
    if c.need(pointer, with_, "endpoint", "call: http `with`", " (a URL string or {uri, authentication})"):
        c.endpoint(pointer_join(pointer, "endpoint"), with_["endpoint"])
    for key in ("headers", "query"):
        if key in with_:
            c.string_map(pointer_join(pointer, key), with_[key], key, scope.names)
    _response_options(c, pointer, with_)


def _response_options(c: Checker, pointer: str, with_: Mapping[str, Any]) -> None:
    if "output" in with_:
        c.choice(pointer_join(pointer, "output"), with_["output"], _CALL_OUTPUT, "output")
    if "redirect" in with_:
        c.boolean(pointer_join(pointer, "redirect"), with_["redirect"], "redirect")


def _call_openapi(c: Checker, pointer: str, with_: Mapping[str, Any], scope: Scope) -> None:
    c.keys(pointer, with_, _OPENAPI_WITH, "the `with` of call: openapi")
    if c.need(pointer, with_, "document", "call: openapi `with`"):
        c.resource(pointer_join(pointer, "document"), with_["document"], "the OpenAPI document")
    if c.need(pointer, with_, "operationId", "call: openapi `with`"):
        c.string(pointer_join(pointer, "operationId"), with_["operationId"], "operationId")
    if "parameters" in with_:
        c.string_map(pointer_join(pointer, "parameters"), with_["parameters"], "parameters", scope.names)
    if "authentication" in with_:
        c.authentication(pointer_join(pointer, "authentication"), with_["authentication"])
    _response_options(c, pointer, with_)


def _call_grpc(c: Checker, pointer: str, with_: Mapping[str, Any], scope: Scope) -> None:
    c.keys(pointer, with_, _GRPC_WITH, "the `with` of call: grpc")
    if c.need(
        pointer, with_, "proto", "call: grpc `with`", " (the service's .proto: {endpoint: path or URL})"
    ):
        c.resource(pointer_join(pointer, "proto"), with_["proto"], "proto")
    if c.need(pointer, with_, "service", "call: grpc `with`", " ({name, host, port})"):
        ptr, service = pointer_join(pointer, "service"), with_["service"]
        service = c.mapping(ptr, service, "the gRPC service ({name, host, port})")
        if service is not None:
            c.keys(ptr, service, _GRPC_SERVICE, "the gRPC service")
            for key in ("name", "host"):
                if c.need(ptr, service, key, "the gRPC service"):
                    c.string(pointer_join(ptr, key), service[key], f"service.{key}")
            port = service.get("port")
            if "port" in service and not is_int(port) and not (isinstance(port, str) and is_expression(port)):
                c.add(pointer_join(ptr, "port"), f"service.port must be a number, not {describe(port)}")
            if "authentication" in service:
                c.authentication(pointer_join(ptr, "authentication"), service["authentication"])
    if c.need(pointer, with_, "method", "call: grpc `with`"):
        c.string(pointer_join(pointer, "method"), with_["method"], "method")
    if "arguments" in with_:
        c.string_map(pointer_join(pointer, "arguments"), with_["arguments"], "arguments", scope.names)
    if "authentication" in with_:
        c.authentication(pointer_join(pointer, "authentication"), with_["authentication"])


def _call_mcp(c: Checker, pointer: str, with_: Mapping[str, Any], scope: Scope) -> None:
    c.keys(pointer, with_, _MCP_WITH, "the `with` of call: mcp")
    if c.need(pointer, with_, "method", "call: mcp `with` (e.g. tools/call)"):
        c.string(pointer_join(pointer, "method"), with_["method"], "method")
    if "transport" in with_:
        ptr = pointer_join(pointer, "transport")
        transport = c.mapping(ptr, with_["transport"], "the MCP transport ({stdio} or {http})")
        if transport is not None:
            c.keys(ptr, transport, (*_MCP_TRANSPORTS, "options"), "the MCP transport")
            if sum(k in transport for k in _MCP_TRANSPORTS) != 1:
                c.add(
                    ptr,
                    "the MCP transport needs exactly one of stdio ({command, arguments}) and http ({endpoint})",
                )
    elif "server" in with_:
        c.endpoint(pointer_join(pointer, "server"), with_["server"])
    else:
        c.add(
            pointer, "call: mcp `with` needs `transport`: {stdio: {command, arguments}} or {http: {endpoint}}"
        )
    if "parameters" in with_:
        c.string_map(pointer_join(pointer, "parameters"), with_["parameters"], "parameters", scope.names)


def _call_a2a(c: Checker, pointer: str, with_: Mapping[str, Any], scope: Scope) -> None:
    c.keys(pointer, with_, _A2A_WITH, "the `with` of call: a2a")
    if c.need(pointer, with_, "method", "call: a2a `with` (e.g. message/send)"):
        c.string(pointer_join(pointer, "method"), with_["method"], "method")
    if "agentCard" in with_:
        card = with_["agentCard"]
        if isinstance(card, Mapping) and "endpoint" in card:
            c.resource(pointer_join(pointer, "agentCard"), card, "agentCard")
        else:
            c.endpoint(pointer_join(pointer, "agentCard"), card)
    elif "server" in with_:
        c.endpoint(pointer_join(pointer, "server"), with_["server"])
    else:
        c.add(pointer, "call: a2a `with` needs `agentCard` (the agent card's URL) or `server`")
    if "parameters" in with_:
        c.string_map(pointer_join(pointer, "parameters"), with_["parameters"], "parameters", scope.names)


def _call_agent(c: Checker, pointer: str, with_: Mapping[str, Any], scope: Scope) -> None:
    c.keys(pointer, with_, _AGENT_WITH, "the `with` of call: agent")
    for key in ("agent", "message"):
        if c.need(pointer, with_, key, "call: agent `with`"):
            c.string(pointer_join(pointer, key), with_[key], key)
    if "env" in with_:
        c.string_map(pointer_join(pointer, "env"), with_["env"], "env", scope.names)
    if "config" in with_:
        config = c.mapping(pointer_join(pointer, "config"), with_["config"], "config")
        if config is not None:
            c.keys(pointer_join(pointer, "config"), config, _AGENT_CONFIG, "the agent config")


def _call_activity(c: Checker, pointer: str, with_: Mapping[str, Any], scope: Scope) -> None:
    c.keys(pointer, with_, _ACTIVITY_WITH, "the `with` of call: activity", {"activity": "; use `name`"})
    if c.need(pointer, with_, "name", "call: activity `with` (the registered function)"):
        c.string(pointer_join(pointer, "name"), with_["name"], "name")


async def run(step: Step) -> Outcome:
    """The call's result; a ``use.functions`` entry runs as a task with ``with`` as its input."""
    engine = step.engine
    spec: CallSpec = step.task.spec
    call = spec.call
    with_ = step.value(dict(spec.with_))
    with_ = _resolve_auth(step, with_)
    timeout = engine.call_timeout(step.task)
    if call in _SELF_TIMED:
        # These bound themselves (``with.timeout``, 2 minutes by default): their own timeout
        # problem must arrive before Temporal gives up on the activity.
        timeout += _SELF_TIMED_MARGIN
    if call in _BUILTIN:
        target = ""
        if call == "activity":
            target = str(with_.get("name") or with_.get("activity") or "")
            with_ = with_.get("input", with_.get("arguments", {}))
        elif call == "agent":
            target = str(with_.get("agent") or "")
        return await engine.effect(_BUILTIN[call], step, with_, target=target, timeout=timeout), None
    if call == "asyncapi":
        raise WorkflowProblem.of(
            "configuration", f"call: {call} is not supported by stigmer_nb yet", instance=step.ref
        )
    function = engine.function(call, step.ref)
    if function is not None:
        # A use.functions entry is a task; it runs with the call's arguments as its input.
        out, _ = await engine.pipeline(
            function, with_, step.run, step.scope, engine.arguments({}, task=step.args["task"])
        )
        return out, None
    return await engine.effect(effects.CALL_FUNCTION, step, with_, target=call, timeout=timeout), None


def _authentication(step: Step, auth: Any) -> Any:
    """A policy with names from use.authentications and secret references resolved."""
    engine = step.engine
    name = None
    if isinstance(auth, str):
        name = auth
    elif isinstance(auth, Mapping) and set(auth) == {"use"}:
        name = str(auth["use"])
    if name is not None:
        policy = (engine.use.get("authentications") or {}).get(name)
        if policy is None:
            raise WorkflowProblem.of(
                "configuration", f"no authentication {name!r} in use.authentications", instance=step.ref
            )
        auth = step.value(dict(policy))
    if not isinstance(auth, Mapping):
        return auth
    resolved = {}
    for scheme, body in auth.items():
        if isinstance(body, Mapping) and set(body) == {"use"}:
            # `basic: {use: mySecret}` takes the credentials from a secret holding a JSON object.
            secret = engine.secrets.get(str(body["use"]))
            if secret is None:
                raise WorkflowProblem.of(
                    "authorization",
                    f"no secret {body['use']!r} for {scheme} authentication",
                    instance=step.ref,
                )
            try:
                body = json.loads(secret)
            except ValueError:
                body = {"token": secret}
            engine.taint.mark(body)  # a password inside a JSON secret is no longer the secret's text
        resolved[scheme] = body
    return resolved


def _resolve_auth(step: Step, with_: dict[str, Any]) -> dict[str, Any]:
    """Authentication references in a call's ``with`` (endpoint, document endpoint, or top level)."""
    if "authentication" in with_:
        with_["authentication"] = _authentication(step, with_["authentication"])
    document = with_.get("document")
    holders = [with_.get("endpoint"), document.get("endpoint") if isinstance(document, Mapping) else None]
    for holder in holders:
        if isinstance(holder, dict) and "authentication" in holder:
            holder["authentication"] = _authentication(step, holder["authentication"])
    return with_


def kind_of(body: Mapping[str, Any]) -> str:
    """``call:http``, ``call:myFunction`` …"""
    return f"call:{body.get('call')}"


# --- Stigmer's call kinds ----------------------------------------------------------------------


def _from_http_call(t: SpecTask) -> dict[str, Any] | None:
    """``HTTP_CALL``: ``method``, ``endpoint.uri``, ``headers``, ``body``, ``timeout_seconds``."""
    t.fields("method", "endpoint", "headers", "body", "timeout_seconds")
    method = t.string("method")
    if method is not None and method.upper() not in _STIGMER_HTTP_METHODS:
        t.fail(t.config.at("method"), f"method {method!r} must be one of {', '.join(_STIGMER_HTTP_METHODS)}")
    endpoint = t.message("endpoint", ("uri",), required=True)
    uri = t.string("uri", within=endpoint) if endpoint is not None else None
    with_: dict[str, Any] = {"method": method, "endpoint": {"uri": uri}}
    headers = t.string_map("headers")
    if headers:
        with_["headers"] = headers
    body = t.mapping("body")
    if body:
        with_["body"] = body
    out: dict[str, Any] = {"call": "http", "with": with_}
    seconds = t.integer("timeout_seconds", 1, 300)
    if seconds is not None:
        out["timeout"] = {"after": {"seconds": seconds}}
    return out


def _from_grpc_call(t: SpecTask) -> dict[str, Any] | None:
    """``GRPC_CALL``: ``service``, ``method``, ``request`` (→ ``arguments``)."""
    t.fields("service", "method", "request")
    with_: dict[str, Any] = {"service": t.string("service"), "method": t.string("method")}
    request = t.mapping("request")
    if request:
        with_["arguments"] = request
    return {"call": "grpc", "with": with_}


def _from_call_activity(t: SpecTask) -> dict[str, Any] | None:
    """``CALL_ACTIVITY``: ``activity`` (a registered function), ``input``."""
    t.fields("activity", "input")
    with_: dict[str, Any] = {"name": t.string("activity")}
    data = t.mapping("input")
    if data:
        with_["input"] = data
    return {"call": "activity", "with": with_}


def _from_agent_call(t: SpecTask) -> dict[str, Any] | None:
    """``AGENT_CALL``: ``agent`` (a slug), ``message``, ``scope``, ``env``, ``config``."""
    t.fields("agent", "scope", "message", "env", "config")
    agent = t.string("agent")
    if agent is not None and len(agent) > 63:
        t.fail(t.config.at("agent"), f"agent {agent!r} is longer than 63 characters (it is a slug)")
    with_: dict[str, Any] = {"agent": agent, "message": t.string("message")}
    if t.config.get("scope") is not None:
        with_["scope"] = t.scope()
    env = t.string_map("env")
    if env:
        with_["env"] = env
    config = t.message("config", ("model", "timeout", "temperature"))
    if config is not None:
        options: dict[str, Any] = {}
        if config.has("model"):
            options["model"] = t.string("model", within=config)
        if config.has("timeout"):
            options["timeout"] = t.integer("timeout", 1, 3600, within=config)
        if config.has("temperature"):
            options["temperature"] = t.number("temperature", 0, 1, within=config)
        if options:
            with_["config"] = options
    return {"call": "agent", "with": with_}


TYPE = TaskType(
    "call",
    ("call", "with"),
    check,
    run,
    {
        "HTTP_CALL": _from_http_call,
        "GRPC_CALL": _from_grpc_call,
        "CALL_ACTIVITY": _from_call_activity,
        "AGENT_CALL": _from_agent_call,
    },
    kind_of=kind_of,
)
