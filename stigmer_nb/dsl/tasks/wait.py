"""``wait``: a durable timer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow

from ..document import pointer_join
from ..model import WaitSpec
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> WaitSpec:
    """``wait``: ``{seconds: N}``, ``PT30S`` or a ``${}`` expression yielding ISO 8601."""
    c.duration(pointer_join(pointer, "wait"), body["wait"], "wait", scope.names)
    return WaitSpec(duration=body["wait"])


async def run(step: Step) -> Outcome:
    """Sleep on a Temporal timer; the input passes through."""
    delay = step.engine.duration(step.task.spec.duration, step.ref, step.data, step.args)
    if delay > timedelta(0):
        await workflow.sleep(delay)
    return step.data, None


def from_stigmer(t: SpecTask) -> dict[str, Any] | None:
    """``WAIT``: ``seconds``."""
    t.fields("seconds")
    return {"wait": {"seconds": t.integer("seconds", 1, None, required=True)}}


TYPE = TaskType("wait", ("wait",), check, run, {"WAIT": from_stigmer})
