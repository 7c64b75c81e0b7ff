"""Effect activities: what DSL tasks do to the outside world, registered on the zigflow queue."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from ..temporal.types import FailureDetail
from . import effects
from .problems import problem

__all__ = ["EFFECT_TIMEOUT", "EffectActivities", "Registry", "effect_error", "effect_timeout"]

EFFECT_TIMEOUT = 120.0
"""Seconds a call that bounds itself (gRPC, MCP, A2A) may take when ``with.timeout`` says nothing."""


def effect_error(
    kind: str, detail: str, *, status: int | None = None, title: str | None = None, retryable: bool = False
) -> ApplicationError:
    """An activity error carrying a problem; non-retryable unless said otherwise."""
    failure = FailureDetail(problem(kind, detail, status=status, title=title))
    error: ApplicationError = failure.error(
        detail,
        type=effects.PROBLEM_ERROR_TYPE if not retryable else "RetryableProblem",
        non_retryable=not retryable,
    )
    return error


def effect_timeout(value: Any, default: float = EFFECT_TIMEOUT) -> float:
    """Seconds from ``with.timeout``: a number, a DSL duration, ISO 8601, or ``{after: duration}``."""
    from .durations import DurationError, parse_duration

    if value is None:
        return default
    if isinstance(value, Mapping) and set(value) == {"after"}:
        value = value["after"]  # the task-level timeout shape
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            seconds = parse_duration(value).total_seconds()
    except DurationError as exc:
        raise effect_error("configuration", f"timeout: {exc}", title="Bad timeout") from None
    if not seconds > 0:
        raise effect_error(
            "configuration", f"timeout must be more than zero seconds, got {value!r}", title="Bad timeout"
        )
    return seconds


@contextlib.contextmanager
def _extra(extra: str, module: str) -> Iterator[None]:
    """Turn a missing client library into one problem naming the extra that brings it."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise
        raise effect_error(
            "configuration",
            f"call: {extra} needs the {exc.name!r} package on this worker: "
            f"pip install 'stigmer-nb[{extra}]' (or stigmer-nb[calls] for every call kind)",
            title="Not installed",
        ) from None


@dataclass
class Registry:
    """Python callables a notebook registers: custom functions and agents, by name."""

    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    agents: dict[str, Callable[..., Any]] = field(default_factory=dict)


def _accepts(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


async def _call_user(fn: Callable[..., Any], args: dict[str, Any]) -> Any:
    """``fn(**args)`` when its parameters name the arguments, else ``fn(args)``; sync ones off-loop."""
    names, var_kw = _accepts(fn)
    keyword = bool(args) and (var_kw or set(args) <= names)
    if not args and not names and not var_kw:
        call: Callable[[], Any] = fn
    elif keyword:

        def call() -> Any:
            return fn(**args)
    else:

        def call() -> Any:
            return fn(args)

    if inspect.iscoroutinefunction(fn):
        return await call()
    result = await asyncio.to_thread(call)
    if inspect.isawaitable(result):
        result = await result
    return result


def _json_result(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=_default))
    except (TypeError, ValueError) as exc:
        raise effect_error("runtime", f"{what} returned a value that is not JSON: {exc}") from None


def _default(value: Any) -> Any:
    for attr in ("to_dict", "model_dump", "tolist"):
        if hasattr(value, attr):
            return getattr(value, attr)()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


WorkflowLookup = Callable[[str | None, str | None, str, str | None], Awaitable[dict[str, Any]]]
"""(execution id, namespace, name, version) → DSL document, for ``run: workflow``."""

EventSink = Callable[[dict[str, Any], str | None], Awaitable[int]]
"""Delivers a CloudEvent to listening workflows (plus one known to run); returns how many got it."""


class EffectActivities:
    """The effect activities, bound to the registry, HTTP client and lookups of one process."""

    def __init__(
        self,
        registry: Registry,
        *,
        client: Client,
        workflows: WorkflowLookup | None = None,
        events: EventSink | None = None,
        allow_shell: bool = False,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.registry = registry
        self._client = client
        self._workflows = workflows
        self._events = events
        self._allow_shell = allow_shell
        self._http_transport = http_transport
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The worker's one pooled HTTP client (calls, OpenAPI documents, script sources, protos)."""
        if self._http is None:
            from .http import new_client

            self._http = new_client(self._http_transport)
        return self._http

    async def close(self) -> None:
        """Close the pooled HTTP client (the worker has stopped)."""
        if self._http is not None:
            client, self._http = self._http, None
            await client.aclose()

    @activity.defn(name=effects.CALL_FUNCTION)
    async def call_function(self, inp: effects.EffectInput) -> Any:
        """A Python callable registered with ``lab.register_function``."""
        fn = self.registry.functions.get(inp.target)
        if fn is None:
            from ..errors import did_you_mean

            known = sorted(self.registry.functions)
            raise effect_error(
                "configuration",
                f"no function named {inp.target!r}{did_you_mean(inp.target, known)}; register one with "
                f"lab.register_function({inp.target!r}, fn) or declare it under use.functions",
                title="Unknown function",
            )
        try:
            result = await _call_user(fn, dict(inp.args))
        except ApplicationError:
            raise
        except Exception as exc:
            raise effect_error(
                "runtime",
                f"function {inp.target!r} raised {type(exc).__name__}: {exc}",
                title="Function failed",
            ) from None
        return _json_result(result, f"function {inp.target!r}")

    @activity.defn(name=effects.CALL_AGENT)
    async def call_agent(self, inp: effects.EffectInput) -> Any:
        """An agent registered with ``lab.register_agent`` (Stigmer's AGENT_CALL)."""
        fn = self.registry.agents.get(inp.target)
        if fn is None:
            from ..errors import did_you_mean

            known = sorted(self.registry.agents)
            raise effect_error(
                "configuration",
                f"no agent {inp.target!r}{did_you_mean(inp.target, known)}; register one with "
                f"lab.register_agent({inp.target!r}, fn)",
                title="Unknown agent",
            )
        args = dict(inp.args)
        kwargs = {
            "message": args.get("message", ""),
            "env": args.get("env") or {},
            "config": args.get("config") or {},
            "input": inp.input,
        }
        names, var_kw = _accepts(fn)
        chosen = kwargs if var_kw else {k: v for k, v in kwargs.items() if k in names}
        if not chosen:
            chosen = {"message": kwargs["message"]} if names else {}
        try:
            result = await _call_user(fn, chosen) if chosen else await _call_user(fn, {})
        except ApplicationError:
            raise
        except Exception as exc:
            raise effect_error(
                "runtime", f"agent {inp.target!r} raised {type(exc).__name__}: {exc}", title="Agent failed"
            ) from None
        return _json_result(result, f"agent {inp.target!r}")

    @activity.defn(name=effects.PUBLISH_EVENT)
    async def publish_event(self, inp: effects.EffectInput) -> int:
        """Deliver an emitted CloudEvent to listening workflows in this lab."""
        if self._events is None:
            return 0
        # The emitter is always running: deliver to it too, whatever visibility says yet.
        return await self._events(dict(inp.args), activity.info().workflow_id)

    @activity.defn(name=effects.LOAD_WORKFLOW)
    async def load_workflow(self, inp: effects.EffectInput) -> dict[str, Any]:
        """The document ``run: workflow`` names (namespace, name, version) among the lab's workflows."""
        if self._workflows is None:
            raise effect_error(
                "configuration", "run: workflow needs the lab's workflows; this worker has none"
            )
        args = inp.args
        name = str(args.get("name") or "")
        if not name:
            raise effect_error("configuration", "run.workflow needs a `name`")
        return await self._workflows(inp.execution_id, args.get("namespace"), name, args.get("version"))

    @activity.defn(name=effects.CALL_HTTP)
    async def call_http(self, inp: effects.EffectInput) -> Any:
        """``call: http``."""
        from .http import call_http

        return await call_http(inp, self.http)

    @activity.defn(name=effects.CALL_OPENAPI)
    async def call_openapi(self, inp: effects.EffectInput) -> Any:
        """``call: openapi``."""
        from .openapi import call_openapi

        return await call_openapi(inp, self.http)

    @activity.defn(name=effects.CALL_GRPC)
    async def call_grpc(self, inp: effects.EffectInput) -> Any:
        """``call: grpc`` (a unary method of a service described by a ``.proto``)."""
        with _extra("grpc", "grpc"):
            from .grpc import call_grpc
        return await call_grpc(inp, self.http)

    @activity.defn(name=effects.CALL_MCP)
    async def call_mcp(self, inp: effects.EffectInput) -> Any:
        """``call: mcp`` (a Model Context Protocol server over stdio or streamable HTTP)."""
        with _extra("mcp", "mcp"), _extra("mcp", "httpx2"):
            import httpx2  # noqa: F401  (imported by the module only when a call is made)
            import mcp  # noqa: F401

            from .mcp import call_mcp
        return await call_mcp(inp)

    @activity.defn(name=effects.CALL_A2A)
    async def call_a2a(self, inp: effects.EffectInput) -> Any:
        """``call: a2a`` (an Agent2Agent JSON-RPC method)."""
        with _extra("a2a", "a2a"):
            import a2a  # noqa: F401

            from .a2a import call_a2a
        return await call_a2a(inp)

    @activity.defn(name=effects.RUN_SHELL)
    async def run_shell(self, inp: effects.EffectInput) -> Any:
        """``run: shell`` (only with the lab's explicit opt-in)."""
        self._check_shell("shell")
        from .processes import run_shell

        return await run_shell(inp)

    @activity.defn(name=effects.RUN_SCRIPT)
    async def run_script(self, inp: effects.EffectInput) -> Any:
        """``run: script`` in python or javascript (only with the lab's explicit opt-in)."""
        self._check_shell("script")
        from .processes import run_script

        return await run_script(inp, self.http)

    def _check_shell(self, which: str) -> None:
        # Checked again here: a document cannot talk a worker into running commands.
        if not self._allow_shell:
            raise effect_error(
                "configuration",
                f"run: {which} is disabled on this worker; start it with allow_shell=True",
                title="Not allowed",
            )

    def all(self) -> list[Callable[..., Any]]:
        """Every effect activity, for worker registration."""
        return [
            self.call_function,
            self.call_agent,
            self.publish_event,
            self.load_workflow,
            self.call_http,
            self.call_openapi,
            self.call_grpc,
            self.call_mcp,
            self.call_a2a,
            self.run_shell,
            self.run_script,
        ]
