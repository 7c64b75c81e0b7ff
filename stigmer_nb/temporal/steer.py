"""Steering one execution through Temporal: pause, resume, terminate, events and approvals.

Everything goes to the execution's DSL run (``workflow-exec-<id>``) by signal, query or
terminate, so it works wherever the runner is, and from any process that reaches the server
(the lab, and the CLI beside a running lab).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from ..dsl.events import EVENT_SIGNAL
from ..errors import ExecutionStateError, InvalidInputError
from .names import APPROVAL_EVENT, PAUSE_SIGNAL, RESUME_SIGNAL, STEERING_QUERY, dsl_workflow_id
from .types import SteeringState

__all__ = [
    "approval_event",
    "complete_event",
    "decide",
    "pause",
    "resume",
    "send_event",
    "steering_state",
    "terminate_run",
]

_START_WAIT = 10.0
"""Seconds to wait for the DSL run of a PENDING execution to exist before giving up."""
_QUERY_TIMEOUT = timedelta(seconds=10)


def _run(client: Client, execution_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(dsl_workflow_id(execution_id))


async def _signal(client: Client, execution_id: str, name: str, arg: Any, wait: float) -> None:
    """Signal the run, waiting up to ``wait`` s for it to start (a PENDING execution's run is
    usually milliseconds away)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            await _run(client, execution_id).signal(name, arg)
            return
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or time.monotonic() >= deadline:
                raise _not_running(execution_id, exc) from None
        await asyncio.sleep(0.1)


def _not_running(execution_id: str, exc: RPCError) -> ExecutionStateError:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return ExecutionStateError(
            f"execution {execution_id} has no run in progress (it has not started, or it has ended)"
        )
    return ExecutionStateError(f"execution {execution_id} cannot be reached: {exc.message}")


async def pause(client: Client, execution_id: str, reason: str = "", *, wait: float = _START_WAIT) -> None:
    """Ask the run to stop at its next task boundary."""
    await _signal(client, execution_id, PAUSE_SIGNAL, reason, wait)


async def resume(client: Client, execution_id: str, reason: str = "", *, wait: float = _START_WAIT) -> None:
    """Let a paused run go on."""
    await _signal(client, execution_id, RESUME_SIGNAL, reason, wait)


async def terminate_run(client: Client, execution_id: str, reason: str) -> bool:
    """Terminate the DSL run at once; False when there is no run in progress to terminate."""
    try:
        await _run(client, execution_id).terminate(reason=reason or "terminated")
        return True
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise _not_running(execution_id, exc) from None


def complete_event(event: dict[str, Any], source: str = "stigmer-nb://lab") -> dict[str, Any]:
    """``event`` with the CloudEvent attributes it lacks (id, specversion, source, time)."""
    if not isinstance(event, dict) or not event.get("type"):
        raise InvalidInputError("an event needs a `type`, e.g. {'type': 'order.paid', 'data': {...}}")
    full = dict(event)
    full.setdefault("id", str(uuid.uuid4()))
    full.setdefault("specversion", "1.0")
    full.setdefault("source", source)
    full.setdefault("time", datetime.now(UTC).isoformat())
    return full


async def send_event(client: Client, execution_id: str, event: dict[str, Any]) -> None:
    """Deliver ``event`` to this execution's run only."""
    await _signal(client, execution_id, EVENT_SIGNAL, event, 0.0)


async def steering_state(client: Client, execution_id: str) -> SteeringState:
    """The run's pause state and the approvals it waits for."""
    try:
        state: SteeringState = await _run(client, execution_id).query(
            STEERING_QUERY, result_type=SteeringState, rpc_timeout=_QUERY_TIMEOUT
        )
    except RPCError as exc:
        raise _not_running(execution_id, exc) from None
    return state


def approval_event(approved: bool, comment: str | None, by: str | None, task_id: str) -> dict[str, Any]:
    """The CloudEvent that carries a person's decision to an approval task."""
    data: dict[str, Any] = {"approved": approved, "comment": comment or "", "by": by or "notebook"}
    return complete_event({"type": APPROVAL_EVENT, "subject": task_id, "data": data})


async def decide(
    client: Client,
    execution_id: str,
    *,
    approved: bool,
    comment: str | None = None,
    by: str | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Approve or reject the approval task the run waits on (``task``: its name or task id,
    needed only when several wait); returns that task's entry."""
    if comment is not None and not isinstance(comment, str):
        raise InvalidInputError("comment must be text")
    waiting = (await steering_state(client, execution_id)).approvals
    if task is not None:
        waiting = [a for a in waiting if task in (a.get("name"), a.get("task_id"))]
    if not waiting:
        raise ExecutionStateError(
            f"execution {execution_id} is not waiting for an approval"
            + (f" in task {task!r}" if task else "")
            + " (lab.pending_approvals() lists those that are)"
        )
    if len(waiting) > 1:
        names = ", ".join(repr(a.get("name")) for a in waiting)
        raise InvalidInputError(
            f"execution {execution_id} waits for {len(waiting)} approvals ({names}): name one with task="
        )
    entry = waiting[0]
    await send_event(client, execution_id, approval_event(approved, comment, by, str(entry["task_id"])))
    return entry
