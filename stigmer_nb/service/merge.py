"""The status merge: fold ordered progress into an execution's state, keeping every task.

Stigmer replaces the task list with each update, so only the last task survives. Here every
transition becomes a ``task_updates`` row and updates one ``TaskState`` per task run; execution
fields change only when an update carries them, and a terminal phase is never left again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..model import ExecutionPhase, ExecutionRecord
from ..temporal.types import ProgressEvent, StatusUpdate

__all__ = ["MergeResult", "TaskState", "merge_status", "parse_time", "redact"]

_TERMINAL_TASK = {"WORKFLOW_TASK_COMPLETED", "WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_SKIPPED"}
REDACTED = "***"


@dataclass
class TaskState:
    """Current state of one task run (what the ``task_states`` view computes in SQL)."""

    task_id: str
    reference: str
    name: str
    kind: str
    status: str
    parent_id: str | None = None
    attempt: int = 1
    started_at: datetime | None = None
    completed_at: datetime | None = None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    first_seq: int = 0
    depth: int = 0
    """Nesting depth: 0 for top-level tasks, parent's depth + 1 below."""

    @property
    def duration_ms(self) -> float | None:
        """Milliseconds from start to end, once it ended."""
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds() * 1000.0


@dataclass
class MergeResult:
    """What a merge changed: rows to append and whether the execution row changed."""

    task_rows: list[dict[str, Any]]
    changed: bool
    """The execution's own fields changed (phase, output, error, times): its row needs writing."""
    became_terminal: bool
    event_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Lifecycle rows for ``execution_events``: phase changes and the run's notes."""


def parse_time(value: str | datetime | None) -> datetime | None:
    """ISO 8601 text (or a datetime) as an aware UTC datetime."""
    if value is None or isinstance(value, datetime):
        return value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every secret string replaced by ``***`` wherever it occurs."""
    if not secrets or value is None:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value


def _phase(name: str) -> ExecutionPhase:
    return ExecutionPhase[name]


_PHASE_EVENTS = {
    ExecutionPhase.EXECUTION_PAUSED: "paused",
    ExecutionPhase.EXECUTION_COMPLETED: "completed",
    ExecutionPhase.EXECUTION_FAILED: "failed",
    ExecutionPhase.EXECUTION_CANCELLED: "cancelled",
    ExecutionPhase.EXECUTION_TERMINATED: "terminated",
}


def _phase_event(
    record: ExecutionRecord, before: ExecutionPhase, at: datetime | None, seq: int | None
) -> dict[str, Any] | None:
    """The lifecycle row for a phase change (``started``, ``paused``, ``resumed`` …), if any."""
    after = record.phase
    if after == before:
        return None
    if after == ExecutionPhase.EXECUTION_IN_PROGRESS:
        kind = "resumed" if before == ExecutionPhase.EXECUTION_PAUSED else "started"
    elif after in _PHASE_EVENTS:
        kind = _PHASE_EVENTS[after]
    else:
        return None
    detail: dict[str, Any] = {"phase": after.name}
    if after.terminal and record.error:
        detail["reason"] = record.error.get("detail") or record.error.get("title")
    return {
        "execution_id": record.id,
        "seq": seq,
        "kind": kind,
        "detail": detail,
        "occurred_at": at or datetime.now(UTC),
    }


def _apply_event(
    record: ExecutionRecord,
    tasks: dict[str, TaskState],
    event: ProgressEvent,
    secrets: tuple[str, ...],
    rows: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> bool:
    """Apply one event; True when the execution's own fields changed (not just its tasks)."""
    at = parse_time(event.at)
    changed = False
    if event.phase and not record.phase.terminal:
        before = record.phase
        changed = record.phase != _phase(event.phase)
        record.phase = _phase(event.phase)
        if record.phase == ExecutionPhase.EXECUTION_IN_PROGRESS and record.started_at is None:
            record.started_at = at
            changed = True
        if (row := _phase_event(record, before, at, event.seq)) is not None:
            events.append(row)
    if event.note is not None:
        events.append(
            {
                "execution_id": record.id,
                "seq": event.seq,
                "kind": event.note.kind,
                "detail": redact(event.note.detail, secrets),
                "occurred_at": at,
            }
        )
    task = event.task
    if task is not None:
        t_input = redact(task.input, secrets)
        t_output = redact(task.output, secrets)
        t_error = redact(task.error, secrets)
        rows.append(
            {
                "execution_id": record.id,
                "seq": event.seq,
                "task_id": task.task_id,
                "parent_id": task.parent_id,
                "reference": task.reference,
                "name": task.name,
                "kind": task.kind,
                "status": task.status,
                "attempt": task.attempt,
                "input": t_input,
                "output": t_output,
                "error": t_error,
                "occurred_at": at,
            }
        )
        state = tasks.get(task.task_id)
        if state is None:
            state = TaskState(
                task_id=task.task_id,
                reference=task.reference,
                name=task.name,
                kind=task.kind,
                status=task.status,
                parent_id=task.parent_id,
                started_at=at,
                input=t_input,
                first_seq=event.seq,
            )
            parent = tasks.get(task.parent_id) if task.parent_id else None
            state.depth = parent.depth + 1 if parent is not None else 0
            tasks[task.task_id] = state
        state.status = task.status
        state.attempt = max(state.attempt, task.attempt)
        if t_input is not None and state.input is None:
            state.input = t_input
        if t_output is not None:
            state.output = t_output
        if t_error is not None:
            state.error = t_error
        if task.status in _TERMINAL_TASK:
            state.completed_at = at
    record.last_seq = event.seq
    return changed


def merge_status(
    record: ExecutionRecord,
    tasks: dict[str, TaskState],
    update: StatusUpdate,
    *,
    secrets: tuple[str, ...] = (),
    now: datetime | None = None,
) -> MergeResult:
    """Apply ``update`` to ``record`` and ``tasks`` in place; events already merged are skipped."""
    was_terminal = record.phase.terminal
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    # Nothing moves after a terminal phase: late reports (e.g. after a cancel) are dropped.
    fresh = (
        []
        if was_terminal
        else sorted((e for e in update.events if e.seq > record.last_seq), key=lambda e: e.seq)
    )
    changed = False
    for event in fresh:
        changed = _apply_event(record, tasks, event, secrets, rows, events) or changed
    before = record.phase
    if update.phase and not was_terminal:
        phase = _phase(update.phase)
        if phase != ExecutionPhase.EXECUTION_PHASE_UNSPECIFIED and phase != record.phase:
            record.phase = phase
            changed = True
    if not was_terminal:
        if update.error:
            record.error = redact(update.error, secrets)
            changed = True
        if update.checkpoint is not None:
            record.checkpoint = redact(update.checkpoint, secrets)
            changed = True
        if update.has_output:
            record.output = redact(update.output, secrets)
            changed = True
        if update.started_at and record.started_at is None:
            record.started_at = parse_time(update.started_at)
            changed = True
        if update.completed_at:
            record.completed_at = parse_time(update.completed_at)
            changed = True
        if update.temporal_workflow_id:
            record.temporal_workflow_id = update.temporal_workflow_id
            changed = True
        if update.runner_workflow_id:
            record.runner_workflow_id = update.runner_workflow_id
            changed = True
    if record.phase.terminal and record.completed_at is None:
        record.completed_at = now or datetime.now(UTC)
        changed = True
    if (row := _phase_event(record, before, record.completed_at, None)) is not None:
        events.append(row)
    if record.phase == ExecutionPhase.EXECUTION_TERMINATED and not was_terminal:
        _close_open_tasks(record, tasks, rows, record.completed_at or now or datetime.now(UTC))
    if changed:
        record.updated_at = now or datetime.now(UTC)
    return MergeResult(rows, changed, record.phase.terminal and not was_terminal, events)


def _close_open_tasks(
    record: ExecutionRecord, tasks: dict[str, TaskState], rows: list[dict[str, Any]], at: datetime
) -> None:
    """A terminated run reports nothing more: its open task runs end FAILED here, with the reason."""
    error = record.error or {"title": "Terminated", "detail": "the execution was terminated"}
    for state in sorted(tasks.values(), key=lambda t: t.first_seq):
        if state.status in _TERMINAL_TASK:
            continue
        record.last_seq += 1
        rows.append(
            {
                "execution_id": record.id,
                "seq": record.last_seq,
                "task_id": state.task_id,
                "parent_id": state.parent_id,
                "reference": state.reference,
                "name": state.name,
                "kind": state.kind,
                "status": "WORKFLOW_TASK_FAILED",
                "attempt": state.attempt,
                "input": None,
                "output": None,
                "error": error,
                "occurred_at": at,
            }
        )
        state.status, state.error, state.completed_at = "WORKFLOW_TASK_FAILED", error, at


def copy_tasks(tasks: dict[str, TaskState]) -> tuple[TaskState, ...]:
    """An immutable-enough copy of the task states, in start order."""
    return tuple(dataclasses.replace(t) for t in sorted(tasks.values(), key=lambda t: t.first_seq))
