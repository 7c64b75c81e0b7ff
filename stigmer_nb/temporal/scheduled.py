"""``stigmer/workflow-execution/scheduled``: one execution of a scheduled workflow, or a chain of them.

A Temporal Schedule (``schedule.every`` / ``schedule.cron``) starts this workflow at each tick: it
records the execution (PENDING, through a local activity on the Stigmer side, as ``lab.run`` does)
and starts the usual invoke workflow as a child that outlives it. For ``schedule.after`` (and for
``every`` in a lab with time skipping, whose timers run on a virtual clock while a Temporal Schedule
keeps the server's) the lab starts it once and it repeats: start, wait (for ``after``, until the
execution ended), sleep the interval, continue as new (so its history stays short).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from .names import (
        INVOKE_WORKFLOW,
        MEMO_ACTIVITY_QUEUE,
        SCHEDULED_WORKFLOW,
        START_SCHEDULED_ACTIVITY,
        invoke_workflow_id,
    )
    from .types import InvokeInput, ScheduledInput

__all__ = ["ScheduledExecutionWorkflow"]

_CREATE_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=SCHEDULED_WORKFLOW)
class ScheduledExecutionWorkflow:
    """Creates an execution and starts its invoke workflow (then, for ``after``, waits and repeats)."""

    @workflow.run
    async def run(self, inp: ScheduledInput) -> str:
        """The id of the execution it started."""
        execution_id: str = await workflow.execute_local_activity(
            START_SCHEDULED_ACTIVITY,
            inp,
            start_to_close_timeout=_CREATE_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        child = await workflow.start_child_workflow(
            INVOKE_WORKFLOW,
            InvokeInput(
                execution_id=execution_id, workflow_name=inp.workflow, timeout_seconds=inp.timeout_seconds
            ),
            id=invoke_workflow_id(execution_id),
            task_queue=workflow.info().task_queue,
            run_timeout=timedelta(seconds=inp.timeout_seconds),
            memo={MEMO_ACTIVITY_QUEUE: inp.runner_queue},
            # Removing the schedule stops what comes next, never an execution already running.
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )
        if not inp.repeat:
            return execution_id
        if inp.repeat == "after":
            try:
                await child
            except ChildWorkflowError:
                pass  # a failed run is in the history; the schedule goes on
        await workflow.sleep(timedelta(seconds=inp.interval_seconds))
        workflow.continue_as_new(dataclasses.replace(inp, runs=inp.runs + 1))
