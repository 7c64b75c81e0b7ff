"""``emit``: publish a CloudEvent to the workflows listening in this lab."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow

from .. import effects
from ..document import pointer_join
from ..model import EmitSpec
from ..problems import WorkflowProblem
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ..check import Checker, Scope

__all__ = ["TYPE"]


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> EmitSpec:
    """``emit: {event: {with: {type, source, data, ...}}}``."""
    none = EmitSpec(attributes={})
    ptr = pointer_join(pointer, "emit")
    emit = c.mapping(ptr, body["emit"], "emit")
    if emit is None:
        return none
    c.keys(ptr, emit, ("event",), "emit")
    if not c.need(ptr, emit, "event", "emit"):
        return none
    ptr = pointer_join(ptr, "event")
    event = c.mapping(ptr, emit["event"], "emit.event")
    if event is None:
        return none
    if "with" not in event:
        c.add(ptr, "emit.event needs `with`: the event's attributes {type, source, data, ...}")
        return none
    c.keys(ptr, event, ("with",), "emit.event")
    ptr = pointer_join(ptr, "with")
    attributes = c.mapping(ptr, event["with"], "emit.event.with")
    if attributes is None:
        return none
    if c.need(ptr, attributes, "type", "emit.event.with"):
        c.string(pointer_join(ptr, "type"), attributes["type"], "the event type")
    c.expression(ptr, attributes, bare=False, names=scope.names)
    return EmitSpec(attributes=attributes)


async def run(step: Step) -> Outcome:
    """The event (with the attributes a CloudEvent needs filled in) is the output."""
    event = step.value(dict(step.task.spec.attributes))
    event.setdefault("id", str(workflow.uuid4()))
    event.setdefault("specversion", "1.0")
    event.setdefault("time", workflow.now().isoformat())
    event.setdefault("source", f"stigmer-nb://{step.engine.workflow_arg['id']}")
    if not event.get("type"):
        raise WorkflowProblem.of("validation", "an emitted event needs `type`", instance=step.ref)
    await step.engine.effect(effects.PUBLISH_EVENT, step, event, timeout=timedelta(seconds=30))
    return event, None


TYPE = TaskType("emit", ("emit",), check, run)
