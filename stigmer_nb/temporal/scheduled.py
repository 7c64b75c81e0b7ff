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
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from ..dsl.events import EVENT_SIGNAL
    from ..dsl.listen import event_matches
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

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []

    @workflow.signal(name=EVENT_SIGNAL)
    def deliver_event(self, event: dict[str, Any]) -> None:
        """A CloudEvent (``schedule.on`` waits for them; other schedules ignore them)."""
        self._events.append(event)

    @workflow.run
    async def run(self, inp: ScheduledInput) -> str:
        """The id of the execution it started."""
        self._events[:0] = inp.events
        run_input = inp.input
        if inp.repeat == "on":
            assert inp.on is not None
            run_input = await self._triggering_events(inp.on)
        execution_id: str = await workflow.execute_local_activity(
            START_SCHEDULED_ACTIVITY,
            dataclasses.replace(inp, input=run_input, events=[]),
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
        if inp.repeat != "on":
            await workflow.sleep(timedelta(seconds=inp.interval_seconds))
        workflow.continue_as_new(dataclasses.replace(inp, runs=inp.runs + 1, events=list(self._events)))

    async def _triggering_events(self, on: dict[str, Any]) -> list[dict[str, Any]]:
        """Wait until the delivered events satisfy ``on`` (one, any or all); take and return them."""
        filters: list[dict[str, Any]] = (
            [on["one"] or {}] if "one" in on else list(on.get("all") or on.get("any") or [])
        )
        need_all = "all" in on
        taken: list[int] = []

        def satisfied() -> bool:
            taken.clear()
            slots = list(range(len(filters)))
            for i, event in enumerate(self._events):
                if not filters:  # `any: []`: any event
                    taken.append(i)
                    return True
                slot = next((s for s in slots if event_matches(event, filters[s], {})), None)
                if slot is None:
                    continue
                taken.append(i)
                if not need_all:
                    return True
                slots.remove(slot)
                if not slots:
                    return True
            return False

        await workflow.wait_condition(satisfied)
        chosen = [self._events[i] for i in taken]
        self._events = [e for i, e in enumerate(self._events) if i not in taken]
        return chosen
