"""Recovery on start: executions whose server state is gone, and activities of dead workers."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from ..service import Service
from .names import INVOKE_WORKFLOW, dsl_workflow_id, invoke_workflow_id
from .types import StatusUpdate

__all__ = ["reconcile", "release_running"]

log = logging.getLogger(__name__)

_LOST = (
    "the Temporal server that ran this execution is gone (the lab ran with durable=False or its "
    "state file was removed); run it again"
)


def _dead_local_worker(identity: str) -> bool:
    """True for a worker identity ``<pid>@<this host>`` whose process no longer exists."""
    pid, _, host = identity.partition("@")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def _release(client: Client, workflow_id: str) -> int:
    """Fail the attempts that a dead local worker held, so Temporal retries them now.

    Otherwise they would wait out their heartbeat or start-to-close timeout (10 s to minutes).
    """
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return 0
    released = 0
    for pending in description.raw_description.pending_activities:
        if not _dead_local_worker(pending.last_worker_identity):
            continue
        handle = client.get_async_activity_handle(
            workflow_id=workflow_id, run_id=description.run_id, activity_id=pending.activity_id
        )
        try:
            await handle.fail(
                ApplicationError("the worker running this attempt died; retrying", type="WorkerLost")
            )
            released += 1
        except RPCError as exc:  # completed or retried meanwhile
            log.debug("could not release %s/%s: %s", workflow_id, pending.activity_id, exc)
    return released


async def release_running(client: Client, task_queue: str | None = None) -> int:
    """For a runner starting up: release attempts of dead local workers in every running invoke
    workflow (found through visibility, since a runner has no history file)."""
    query = f"WorkflowType = '{INVOKE_WORKFLOW}' AND ExecutionStatus = 'Running'"
    if task_queue:
        query += f" AND TaskQueue = '{task_queue}'"
    ids = [wf.id async for wf in client.list_workflows(query)]
    ids += [dsl_workflow_id(wid.rsplit("/", 1)[-1]) for wid in ids]
    return sum(await asyncio.gather(*(_release(client, wid) for wid in ids)))


async def reconcile(client: Client, service: Service) -> dict[str, list[str]]:
    """Mark executions Temporal no longer knows FAILED; release activities of dead local workers."""
    lost: list[str] = []
    resumed: list[str] = []
    for eid in service.running_execution_ids():
        try:
            await client.get_workflow_handle(invoke_workflow_id(eid)).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                lost.append(eid)
                continue
            raise
        resumed.append(eid)
    for eid in lost:
        await service.update_status(
            StatusUpdate(
                execution_id=eid,
                phase="EXECUTION_FAILED",
                error={
                    "type": "https://serverlessworkflow.io/spec/1.0.0/errors/runtime",
                    "status": 500,
                    "title": "Execution lost",
                    "detail": _LOST,
                },
            )
        )
    ids = [wid for eid in resumed for wid in (invoke_workflow_id(eid), dsl_workflow_id(eid))]
    released = await asyncio.gather(*(_release(client, wid) for wid in ids))
    if sum(released):
        log.info("released %d activity attempts held by dead workers", sum(released))
    return {"lost": lost, "resumed": resumed}
