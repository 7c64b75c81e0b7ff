"""The lab's schedules: a document's ``schedule`` as a Temporal Schedule or a repeating workflow."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from ..dsl.durations import parse_duration
from ..errors import InvalidInputError, NotFoundError
from ..settings import Settings
from .names import SCHEDULE_PREFIX, SCHEDULED_WORKFLOW
from .types import ScheduledInput

__all__ = [
    "ScheduleInfo",
    "list_schedules",
    "remove_schedule",
    "schedule_id_for",
    "start_schedule",
    "trigger_schedule",
]

_MEMO_KIND = "stigmerSchedule"
"""Memo key on the repeating workflows (and Schedules) the lab starts: ``every``, ``cron`` or ``after``."""


@dataclass(frozen=True)
class ScheduleInfo:
    """One of the lab's schedules, as ``lab.schedules()`` lists it."""

    schedule_id: str
    workflow: str
    kind: str
    """``every``, ``cron`` or ``after``."""
    spec: str
    """The interval (seconds) or the cron expression."""
    mechanism: str
    """``temporal schedule`` or ``workflow`` (a repeating workflow of timers)."""
    next_run_at: datetime | None = None


def schedule_id_for(stigmer_queue: str, slug: str) -> str:
    """One schedule per workflow and lab (its Stigmer queue): scheduling it again replaces it."""
    return f"{SCHEDULE_PREFIX}{stigmer_queue}/{slug}"


async def start_schedule(
    client: Client, settings: Settings, *, slug: str, workflow: str, schedule: Mapping[str, Any], input: Any
) -> str:
    """Start ``schedule`` (a document's ``schedule`` section) for ``workflow``; returns its id."""
    kind = next((k for k in ("every", "cron", "after", "on") if k in schedule), None)
    if kind is None:
        raise InvalidInputError("the document has no schedule: add `schedule: {every | cron | after}`")
    if kind == "on":
        _check_on(schedule["on"])
    try:  # every run gets it: refuse what no run could take before anything is started
        json.dumps(input, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the schedule's input is not JSON: {exc}") from None
    schedule_id = schedule_id_for(settings.stigmer_queue, slug)
    await remove_schedule(client, schedule_id, missing_ok=True)
    base = ScheduledInput(
        schedule_id=schedule_id,
        workflow=workflow,
        input=input,
        runner_queue=settings.runner_queue,
        timeout_seconds=settings.effective_execution_timeout,
    )
    # The server turns a cron expression into calendar specs: the memo keeps it as written.
    memo = {_MEMO_KIND: kind, "workflow": workflow, "spec": _spec_text(kind, schedule[kind])}
    if kind == "cron" or (kind == "every" and not settings.time_skipping):
        spec = (
            ScheduleSpec(cron_expressions=[str(schedule["cron"])])
            if kind == "cron"
            else ScheduleSpec(intervals=[ScheduleIntervalSpec(every=_interval(schedule["every"]))])
        )
        try:
            await client.create_schedule(
                schedule_id,
                Schedule(
                    action=ScheduleActionStartWorkflow(
                        SCHEDULED_WORKFLOW, base, id=f"{schedule_id}-run", task_queue=settings.stigmer_queue
                    ),
                    spec=spec,
                    # `every` runs regardless of the previous run (the spec), cron alike.
                    policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
                ),
                memo=memo,
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.INVALID_ARGUMENT:
                raise
            # The server parses cron: a bad expression is the document's fault, said in one line.
            raise InvalidInputError(f"schedule.{kind} {memo['spec']!r} is refused: {exc.message}") from None
        return schedule_id
    if kind == "on":
        await client.start_workflow(
            SCHEDULED_WORKFLOW,
            ScheduledInput(**{**base.__dict__, "repeat": "on", "on": dict(schedule["on"])}),
            id=schedule_id,
            task_queue=settings.stigmer_queue,
            memo=memo,
        )
        return schedule_id
    interval = _interval(schedule[kind])
    starter = client
    if settings.time_skipping:
        from temporalio.testing import TimeSkipper

        starter = TimeSkipper(client).client
    await starter.start_workflow(
        SCHEDULED_WORKFLOW,
        ScheduledInput(**{**base.__dict__, "repeat": kind, "interval_seconds": interval.total_seconds()}),
        id=schedule_id,
        task_queue=settings.stigmer_queue,
        memo=memo,
    )
    return schedule_id


def _spec_text(kind: str, value: Any) -> str:
    """``3600s`` for an interval, the expression for cron, the event types for ``on``."""
    if kind == "on":
        filters = [value.get("one")] if "one" in value else list(value.get("all") or value.get("any") or [])
        types = [str((f or {}).get("with", {}).get("type", "any event")) for f in filters] or ["any event"]
        strategy = next(k for k in ("one", "any", "all") if k in value)
        return f"{strategy}: {', '.join(types)}"
    return str(value) if kind == "cron" else f"{_interval(value).total_seconds():g}s"


def _check_on(on: Mapping[str, Any]) -> None:
    """What ``schedule.on`` supports: one, any or all of attribute filters (no until, no correlate)."""
    if "until" in on:
        raise InvalidInputError("schedule.on does not support `until`; use one, any or all")
    filters = [on.get("one")] if "one" in on else list(on.get("all") or on.get("any") or [])
    if any(isinstance(f, Mapping) and "correlate" in f for f in filters):
        raise InvalidInputError(
            "schedule.on does not support `correlate` (there is no run yet to correlate with); "
            "filter on attributes in `with`"
        )


def _interval(value: Any) -> timedelta:
    interval = parse_duration(value)
    if interval < timedelta(seconds=1):
        raise InvalidInputError(f"a schedule interval must be at least 1 second, got {interval}")
    return interval


async def list_schedules(client: Client, stigmer_queue: str, known: Iterable[str] = ()) -> list[ScheduleInfo]:
    """The schedules of the lab on ``stigmer_queue`` that are on: Temporal Schedules and repeating workflows.

    Visibility (the server's listing) lags behind creates and deletes, so each schedule it lists,
    and each one ``known`` to this process, is described directly, which is up to date.
    """
    prefix = schedule_id_for(stigmer_queue, "")
    candidates = {i for i in known if i.startswith(prefix)}
    async for entry in await client.list_schedules():
        if entry.id.startswith(prefix):
            candidates.add(entry.id)
    query = (
        f"WorkflowType = '{SCHEDULED_WORKFLOW}' AND ExecutionStatus = 'Running' "
        f"AND TaskQueue = '{stigmer_queue}'"
    )
    async for wf in client.list_workflows(query):
        if wf.id.startswith(prefix):
            candidates.add(wf.id)
    found = [info for info in [await _describe(client, i) for i in candidates] if info is not None]
    return sorted(found, key=lambda s: s.schedule_id)


async def _describe(client: Client, schedule_id: str) -> ScheduleInfo | None:
    """One schedule as it is now; None when it is gone."""
    try:
        described = await client.get_schedule_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        memo = await described.memo()
        upcoming = described.info.next_action_times
        return ScheduleInfo(
            schedule_id,
            str(memo.get("workflow", "")),
            str(memo.get(_MEMO_KIND, "")),
            str(memo.get("spec", "")),
            "temporal schedule",
            upcoming[0] if upcoming else None,
        )
    try:
        workflow = await client.get_workflow_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return None
    memo = await workflow.memo()
    if workflow.status != WorkflowExecutionStatus.RUNNING or _MEMO_KIND not in memo:
        return None
    return ScheduleInfo(
        schedule_id,
        str(memo.get("workflow", "")),
        str(memo[_MEMO_KIND]),
        str(memo.get("spec", "")),
        "workflow",
    )


async def remove_schedule(client: Client, schedule_id: str, *, missing_ok: bool = False) -> None:
    """Stop ``schedule_id``: no run starts after this; runs already started go on."""
    removed = False
    try:
        await client.get_schedule_handle(schedule_id).delete()
        removed = True
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        await client.get_workflow_handle(schedule_id).terminate("schedule removed")
        removed = True
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise
    if not removed and not missing_ok:
        raise NotFoundError("schedule", schedule_id)


async def trigger_schedule(client: Client, schedule_id: str) -> None:
    """Start one run of a Temporal Schedule now (cron and every)."""
    try:
        await client.get_schedule_handle(schedule_id).trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError("Temporal Schedule (every or cron)", schedule_id) from None
        raise
