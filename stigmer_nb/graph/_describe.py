"""Short texts drawn on a node or an edge: what a task does, in a line a diagram can hold."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..dsl.model import CallSpec, ForSpec, ListenSpec, RaiseSpec, RunSpec, Task, TrySpec, WaitSpec

__all__ = ["condition", "describe", "error_filter", "short"]

_WIDTH = 34
_SPACES = re.compile(r"\s+")
_UNITS = (("days", "d"), ("hours", "h"), ("minutes", "m"), ("seconds", "s"), ("milliseconds", "ms"))


def short(value: Any, width: int = _WIDTH) -> str:
    """``value`` on one line, ``${ }`` unwrapped, cut to ``width`` characters with an ellipsis."""
    text = value if isinstance(value, str) else _compact(value)
    text = _SPACES.sub(" ", text).strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def condition(value: Any) -> str:
    """An ``if``/``when``/``while`` expression as a node or edge shows it."""
    return short(value, 30)


def describe(task: Task) -> str:
    """What a task does, e.g. ``call:http GET``, ``wait 5s``, ``for each item in .items``."""
    spec = task.spec
    handler = _DESCRIBE.get(task.type)
    text = handler(task, spec) if handler is not None else task.kind
    return text or task.kind


def error_filter(spec: TrySpec) -> str:
    """The label of the edge into a catch: ``on error`` and what it catches."""
    catch = spec.catch
    parts = ["on error"]
    with_ = catch.errors_with or {}
    if "status" in with_:
        parts.append(str(with_["status"]))
    if "type" in with_:
        parts.append(_last_segment(with_["type"]))
    if catch.when is not None:
        parts.append(f"when {condition(catch.when)}")
    if catch.except_when is not None:
        parts.append(f"unless {condition(catch.except_when)}")
    return " ".join(parts)


# --- per task type ---------------------------------------------------------------------------


def _call(task: Task, spec: CallSpec) -> str:
    with_ = spec.with_ if isinstance(spec.with_, Mapping) else {}
    extra = {
        "http": with_.get("method"),
        "openapi": with_.get("operationId"),
        "grpc": with_.get("method"),
        "asyncapi": with_.get("operation"),
        "mcp": with_.get("method"),
        "a2a": with_.get("method"),
    }.get(spec.call)
    if isinstance(extra, str) and extra:
        return f"{task.kind} {short(extra.upper() if spec.call == 'http' else extra, 20)}"
    return task.kind


def _run(task: Task, spec: RunSpec) -> str:
    body = spec.body
    text = task.kind
    if spec.process == "workflow":
        name = "/".join(str(body[k]) for k in ("namespace", "name") if isinstance(body.get(k), str))
        text += f" {short(name, 24)}" if name else ""
    elif spec.process == "script" and isinstance(body.get("language"), str):
        text += f" ({body['language']})"
    return text + ("" if spec.await_ else " (detached)")


def _wait(task: Task, spec: WaitSpec) -> str:
    return f"wait {duration(spec.duration)}"


def _raise(task: Task, spec: RaiseSpec) -> str:
    error = spec.error
    if isinstance(error, str):  # a name in use.errors, or an expression
        return f"raise {short(error, 24)}"
    if isinstance(error, Mapping):
        what = error.get("title") or _last_segment(error.get("type"))
        return f"raise {short(what, 24)}" if what else "raise"
    return "raise"


def _listen(task: Task, spec: ListenSpec) -> str:
    if spec.approval:
        metadata = task.definition.get("metadata")
        prompt = metadata.get("prompt") if isinstance(metadata, Mapping) else None
        return f"approval: {short(prompt, 28)}" if prompt else "approval"
    to = spec.to if isinstance(spec.to, Mapping) else {}
    text = "listen"
    if isinstance(to.get("one"), Mapping):
        text += f" {_event_type(to['one'])}".rstrip()
    for key in ("any", "all"):
        if isinstance(to.get(key), list):
            types = [_event_type(f) for f in to[key]]
            text += f" {key}: {short(', '.join(t for t in types if t) or str(len(types)), 24)}"
    if spec.foreach is not None:
        text += f" · foreach {spec.foreach.item}"
    return text


def _emit(task: Task, spec: Any) -> str:
    kind = spec.attributes.get("type") if isinstance(spec.attributes, Mapping) else None
    return f"emit {short(kind, 28)}" if kind else "emit"


def _for(task: Task, spec: ForSpec) -> str:
    return f"for each {spec.each} in {short(spec.in_, 24)}"


def _fork(task: Task, spec: Any) -> str:
    return "fork: first wins" if spec.compete else "fork: all branches"


def _try(task: Task, spec: TrySpec) -> str:
    retry = spec.catch.retry
    if retry is None:
        return "try"
    if isinstance(retry, str):
        return f"try · retry {short(retry, 20)}"
    limit = retry.get("limit") if isinstance(retry, Mapping) else None
    attempt = limit.get("attempt") if isinstance(limit, Mapping) else None
    count = attempt.get("count") if isinstance(attempt, Mapping) else None
    return f"try · retry ≤{count}" if isinstance(count, int) else "try · retry"


_DESCRIBE: dict[str, Any] = {
    "call": _call,
    "run": _run,
    "wait": _wait,
    "raise": _raise,
    "listen": _listen,
    "emit": _emit,
    "for": _for,
    "fork": _fork,
    "try": _try,
}


# --- small helpers ---------------------------------------------------------------------------


def duration(value: Any) -> str:
    """``{minutes: 1, seconds: 30}`` → ``1m 30s``; ISO 8601 and expressions as written (short)."""
    if isinstance(value, Mapping):
        parts = [f"{value[key]}{unit}" for key, unit in _UNITS if key in value]
        return " ".join(parts) or "0s"
    return short(value, 24)


def _event_type(event_filter: Any) -> str:
    with_ = event_filter.get("with") if isinstance(event_filter, Mapping) else None
    kind = with_.get("type") if isinstance(with_, Mapping) else None
    return short(kind, 28) if kind else ""


def _last_segment(uri: Any) -> str:
    """``https://…/errors/validation`` → ``validation``; anything else shortened."""
    if not isinstance(uri, str):
        return ""
    if uri.lstrip().startswith("${"):
        return short(uri, 20)
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _compact(value: Any) -> str:
    import json

    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
