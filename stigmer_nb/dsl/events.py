"""Delivering CloudEvents (from ``emit`` and ``lab.send_event``) to workflows that listen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from ..temporal.names import DSL_WORKFLOW, SCHEDULE_PREFIX, SCHEDULED_WORKFLOW

__all__ = ["EVENT_SIGNAL", "broadcast"]

EVENT_SIGNAL = "DeliverEvent"
"""Signal name on ``ExecuteServerlessWorkflow`` (kept in step with ``dsl.workflow``)."""

log = logging.getLogger(__name__)


async def broadcast(
    client: Client,
    event: dict[str, Any],
    *,
    task_queue: str | None = None,
    schedule_queue: str | None = None,
    also: Iterable[str] = (),
) -> int:
    """Signal ``event`` to every running DSL workflow, and to schedules waiting for events.

    Each DSL run's ``listen`` tasks filter it (an event counts for a listen that begins within
    the run's event window); a ``schedule.on`` starts a run when its events have come. ``also``
    names workflows known to be running (visibility lags behind starts a little under load).
    Returns how many received it.
    """
    query = f"WorkflowType = '{DSL_WORKFLOW}' AND ExecutionStatus = 'Running'"
    if task_queue:
        query += f" AND TaskQueue = '{task_queue}'"
    ids = {wf.id async for wf in client.list_workflows(query)} | set(also)
    if schedule_queue:
        # Only the repeating workflows of `schedule.on` (their id is the schedule's) listen.
        waiting = (
            f"WorkflowType = '{SCHEDULED_WORKFLOW}' AND ExecutionStatus = 'Running' "
            f"AND TaskQueue = '{schedule_queue}'"
        )
        ids |= {wf.id async for wf in client.list_workflows(waiting) if wf.id.startswith(SCHEDULE_PREFIX)}

    async def deliver(workflow_id: str) -> bool:
        try:
            await client.get_workflow_handle(workflow_id).signal(EVENT_SIGNAL, event)
            return True
        except RPCError as exc:  # finished in the meantime
            log.debug("event not delivered to %s: %s", workflow_id, exc)
            return False

    results = await asyncio.gather(*(deliver(i) for i in ids))
    return sum(results)
