"""``listen``: wait for events delivered to this workflow; ``foreach`` handles each one consumed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from temporalio.exceptions import CancelledError

from ...temporal.names import APPROVAL_EVENT
from ..document import pointer_join
from ..model import ForeachSpec, ListenSpec
from ..problems import WorkflowProblem
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]

_FOREACH = ("item", "at", "do", "output", "export")
_LISTEN_READ = ("data", "envelope", "raw")
_SIGNAL_TYPES = ("signal", "query", "update")


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> ListenSpec:
    """``listen: {to: {one|any|all, until}, read}`` and ``foreach`` (beside or inside ``listen``)."""
    ptr = pointer_join(pointer, "listen")
    spec = c.mapping(ptr, body["listen"], "listen")
    foreach: ForeachSpec | None = None
    if spec is not None:
        c.keys(ptr, spec, ("to", "read", "foreach"), "listen")
        if c.need(ptr, spec, "to", "listen"):
            c.consumption(pointer_join(ptr, "to"), spec["to"], scope.names)
        if "read" in spec:
            c.choice(pointer_join(ptr, "read"), spec["read"], _LISTEN_READ, "listen.read")
        if "foreach" in spec:
            foreach = _foreach(c, pointer_join(ptr, "foreach"), spec["foreach"], scope)
    # The spec puts `foreach` beside `listen`; an older shape nests it inside.
    if "foreach" in body:
        foreach = _foreach(c, pointer_join(pointer, "foreach"), body["foreach"], scope)
    spec = spec or {}
    to = spec.get("to")
    return ListenSpec(
        to=to if isinstance(to, Mapping) else {},
        read=str(spec.get("read", "data")),
        foreach=foreach,
        approval=is_approval(body),
    )


def is_approval(body: Mapping[str, Any]) -> bool:
    """An approval task: a ``listen`` to ``one`` event of type ``ai.stigmer.approval``.

    Its decision arrives as that event, with data ``{approved: bool, comment, by}``; the task's
    output is ``[data]`` (``output: {as: '${ .[0] }'}`` keeps the decision itself), and an
    optional ``metadata.prompt`` (``${}`` allowed) says what is asked.
    """
    listen = body.get("listen")
    to = listen.get("to") if isinstance(listen, Mapping) else None
    one = to.get("one") if isinstance(to, Mapping) else None
    with_ = one.get("with") if isinstance(one, Mapping) else None
    return isinstance(with_, Mapping) and with_.get("type") == APPROVAL_EVENT


def _kind(body: Mapping[str, Any]) -> str:
    return "listen:approval" if is_approval(body) else "listen"


def _foreach(c: Checker, pointer: str, spec: Any, scope: Scope) -> ForeachSpec | None:
    """A subscription iterator: ``{item, at, do, output, export}`` with ``$item``/``$at`` bound."""
    spec = c.mapping(pointer, spec, "foreach")
    if spec is None:
        return None
    c.keys(pointer, spec, _FOREACH, "foreach")
    for key in ("item", "at"):
        if key in spec:
            c.variable(pointer_join(pointer, key), spec[key], f"foreach.{key}")
    inner = scope.bind(spec.get("item", "item"), spec.get("at", "index"))
    do = c.task_list(pointer_join(pointer, "do"), spec["do"], inner) if "do" in spec else None
    for key in ("output", "export"):
        if key in spec:
            c.io(pointer_join(pointer, key), spec[key], key, "as", inner.names)
    output = spec.get("output")
    return ForeachSpec(
        item=str(spec.get("item", "item")),
        at=str(spec.get("at", "index")),
        do=do if do is not None and do.tasks else None,
        output_as=output.get("as") if isinstance(output, Mapping) else None,
    )


async def run(step: Step) -> Outcome:
    """The consumed events (their data by default), each through ``foreach`` when there is one."""
    engine = step.engine
    if engine.events is None:
        raise WorkflowProblem.of("configuration", "listen is not available here", instance=step.ref)
    spec: ListenSpec = step.task.spec
    steering = engine.steering if spec.approval else None
    if steering is not None:
        metadata = step.task.definition.get("metadata")
        prompt = metadata.get("prompt") if isinstance(metadata, Mapping) else None
        steering.awaiting(step.run.task_id, step.task.name, step.ref, step.value(prompt))
    to = spec.to
    if spec.approval:
        # Decisions name the task run they answer (their `subject`), so that two approvals
        # waiting side by side each take their own.
        one = dict(to["one"])
        to = {**to, "one": {**one, "with": {**one["with"], "subject": step.run.task_id}}}
    try:
        consumed = await engine.events.listen(to, step.data, step.args, step.ref, engine)
    except BaseException as exc:
        if steering is not None:
            stopped = isinstance(exc, asyncio.CancelledError | CancelledError)
            why = "timed out or cancelled" if stopped else str(exc)
            steering.withdrawn(step.run.task_id, why or type(exc).__name__)
        raise
    if steering is not None:
        steering.decided(step.run.task_id, consumed[0].get("data") if consumed else None)
    foreach = spec.foreach
    out = []
    for index, event in enumerate(consumed):
        item: Any = event.get("data") if spec.read == "data" else event
        if foreach is not None:
            loop = {foreach.item: item, foreach.at: index}
            if foreach.do is not None:
                item = await step.run_list(foreach.do, item, {**step.scope, **loop})
            if foreach.output_as is not None:
                each_args = engine.arguments(loop, task=step.args["task"], input=step.data)
                item = step.field(foreach.output_as, item, each_args)
        out.append(item)
    return out, None


def from_stigmer(t: SpecTask) -> dict[str, Any] | None:
    """``LISTEN``: ``to: {mode: one|all, signals: [{id, type}]}`` → events filtered by type."""
    t.fields("to")
    to = t.message("to", ("mode", "signals"), required=True)
    if to is None:
        return None
    mode = to.get("mode") or "one"
    if mode not in ("one", "all"):
        t.fail(to.at("mode"), f"to.mode must be one or all, not {mode!r}")
    filters = []
    for _, signal in t.items("signals", within=to, fields=("id", "type")):
        if signal is None:
            continue
        kind = signal.get("type") or "signal"
        if kind != "signal":
            reason = (
                "is not one of signal, query, update" if kind not in _SIGNAL_TYPES else "is not supported"
            )
            t.fail(
                signal.at("type"),
                f"signal type {kind!r} {reason}; listen waits for events delivered by signal",
            )
        filters.append({"with": {"type": t.string("id", within=signal)}})
    if mode == "all":
        strategy: dict[str, Any] = {"all": filters}
    elif len(filters) == 1:
        strategy = {"one": filters[0]}
    else:
        strategy = {"any": filters}
    return {"listen": {"to": strategy}}


TYPE = TaskType("listen", ("listen", "foreach"), check, run, {"LISTEN": from_stigmer}, kind_of=_kind)
