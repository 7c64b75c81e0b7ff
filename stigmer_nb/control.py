"""Steering executions from the lab: pause, resume, terminate, re-run, recover, approve, events.

The lab checks the execution's recorded state first (so a wrong request fails with one clear
line and nothing sent), then acts through Temporal (``temporal/steer.py``): remote runners are
steered the same way as the lab's own.
"""

from __future__ import annotations

import getpass
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from .dsl.problems import problem
from .errors import ExecutionStateError, ExecutionTimeoutError, InvalidInputError
from .model import ExecutionPhase, ExecutionRecord
from .service.service import resume_point
from .service.subscribers import ExecutionSnapshot
from .temporal import steer
from .temporal.names import dsl_workflow_id, invoke_workflow_id
from .temporal.types import StatusUpdate

if TYPE_CHECKING:
    from .lab import Execution, Lab

__all__ = [
    "SAME",
    "approve",
    "pause",
    "recover",
    "rerun",
    "resume",
    "send_event",
    "terminate",
    "wait_until",
]

SAME: Any = object()
"""Default of ``rerun(input=...)``: the input the execution was started with."""

_ALIASES = {"approval": "approval", "awaiting_approval": "approval"}


def _running(lab: Lab, execution_id: str, doing: str) -> ExecutionRecord:
    record = lab.service.get_execution(execution_id)
    if record.phase.terminal:
        raise ExecutionStateError(
            f"cannot {doing} execution {execution_id}: it has ended ({record.phase.name})"
        )
    return record


def pause(lab: Lab, execution_id: str, reason: str = "") -> None:
    """Ask the run to stop at its next task boundary (the phase becomes EXECUTION_PAUSED there)."""
    _running(lab, execution_id, "pause")
    lab._check().call(steer.pause(lab.client, execution_id, reason))


def resume(lab: Lab, execution_id: str, reason: str = "") -> None:
    """Let a paused run go on."""
    _running(lab, execution_id, "resume")
    lab._check().call(steer.resume(lab.client, execution_id, reason))


def terminate(lab: Lab, execution_id: str, reason: str = "") -> None:
    """Stop the run at once (no task finishes or cleans up); it ends EXECUTION_TERMINATED.

    Nothing to do once the execution has ended.
    """
    if lab.service.get_execution(execution_id).phase.terminal:
        return
    lab._check().call(_terminate(lab, execution_id, reason or "terminated from the lab"))


async def _terminate(lab: Lab, execution_id: str, reason: str) -> None:
    if await steer.terminate_run(lab.client, execution_id, reason):
        return  # the runner's activity sees it and the invoke workflow records it
    # No run in progress: either it is over (its end is on the way), or it never started.
    try:
        await lab.client.get_workflow_handle(dsl_workflow_id(execution_id)).describe()
        return
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    invoke = lab.client.get_workflow_handle(invoke_workflow_id(execution_id))
    try:
        if (await invoke.describe()).status == WorkflowExecutionStatus.RUNNING:
            await invoke.terminate(reason=reason)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    await lab.service.update_status(
        StatusUpdate(
            execution_id=execution_id,
            phase=ExecutionPhase.EXECUTION_TERMINATED.name,
            error=problem("runtime", f"terminated: {reason}", status=499, title="Terminated"),
            completed_at=datetime.now(UTC).isoformat(),
        )
    )


def send_event(lab: Lab, execution_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """Deliver a CloudEvent to this execution's run only; returns the event as sent."""
    full = steer.complete_event(dict(event))
    _running(lab, execution_id, "send an event to")
    lab._check().call(steer.send_event(lab.client, execution_id, full))
    return full


def approve(
    lab: Lab,
    execution_id: str,
    *,
    approved: bool,
    comment: str | None = None,
    by: str | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Decide the approval task the execution waits on; returns that task (name, id, prompt)."""
    _running(lab, execution_id, "approve" if approved else "reject")
    return lab._check().call(
        steer.decide(
            lab.client,
            execution_id,
            approved=approved,
            comment=comment,
            by=by or _user(),
            task=task,
        )
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: say where it came from instead
        return "notebook"


def _env_for(lab: Lab, old: ExecutionRecord, runtime_env: Mapping[str, Any] | None) -> dict[str, Any]:
    """The runtime env of a new run of ``old``: given, or the old one (secrets only while known)."""
    if runtime_env is not None:
        return dict(runtime_env)
    secrets = lab.service.known_secrets(old.id)
    missing = [k for k in _secret_keys(old) if k not in secrets]
    if missing:
        raise ExecutionStateError(
            f"execution {old.id} had secret runtime values ({', '.join(missing)}), which are never "
            "stored: pass them again with runtime_env={...: {'value': ..., 'is_secret': True}}"
        )
    env: dict[str, Any] = {k: v["value"] for k, v in old.runtime_env.items() if not v.get("is_secret")}
    env.update({k: {"value": v, "is_secret": True} for k, v in secrets.items()})
    return env


def _secret_keys(record: ExecutionRecord) -> list[str]:
    return [k for k, v in record.runtime_env.items() if v.get("is_secret")]


def rerun(
    lab: Lab,
    execution_id: str,
    *,
    input: Any = SAME,
    document: str | Path | Mapping[str, Any] | None = None,
    name: str | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    tags: list[str] | None = None,
) -> Execution:
    """A new execution of the same document version (or ``document``), linked by ``rerun_of_id``."""
    old = lab.service.get_execution(execution_id)
    return _again(lab, old, "rerun", input, document, name, runtime_env, tags)


def recover(
    lab: Lab,
    execution_id: str,
    *,
    document: str | Path | Mapping[str, Any] | None = None,
    name: str | None = None,
    runtime_env: Mapping[str, Any] | None = None,
) -> Execution:
    """Resume a FAILED execution from the top-level task it failed in, with that task's recorded
    input and ``$context`` (the tasks before it are not run again), as a new execution linked by
    ``recovered_from_id``; ``document`` is the fixed document (it must keep the task's name)."""
    old = lab.service.get_execution(execution_id)
    return _again(lab, old, "recover", SAME, document, name, runtime_env, None)


def _again(
    lab: Lab,
    old: ExecutionRecord,
    how: str,
    input: Any,
    document: str | Path | Mapping[str, Any] | None,
    name: str | None,
    runtime_env: Mapping[str, Any] | None,
    tags: list[str] | None,
) -> Execution:
    thread = lab._check()
    env = _env_for(lab, old, runtime_env)
    prepared = lab._prepared(document, env) if document is not None else None
    if how == "recover":
        # Checked before anything is written: the fix must still have the task to resume at.
        doc = prepared[0] if prepared else _version_of(lab, old)
        resume_point(old, doc)
    return thread.call(
        _start_again(lab, old, how, old.input if input is SAME else input, prepared, name, env, tags)
    )


def _version_of(lab: Lab, old: ExecutionRecord) -> dict[str, Any]:
    if old.document_hash:
        return lab.service.version_document(old.document_hash)
    return lab.service.get_workflow(old.workflow_id).document


async def _start_again(
    lab: Lab,
    old: ExecutionRecord,
    how: str,
    input: Any,
    prepared: tuple[dict[str, Any], dict[str, Any] | None] | None,
    name: str | None,
    env: dict[str, Any],
    tags: list[str] | None,
) -> Execution:
    from .lab import Execution

    service = lab.service
    if prepared is not None:
        wf = await service.apply_workflow(prepared[0], spec=prepared[1])
        workflow, digest = wf.id, wf.document_hash
    else:
        workflow, digest = old.workflow_id, old.document_hash
    record = await service.create_execution(
        workflow=workflow,
        name=name,
        input=input,
        runtime_env=env,
        tags=old.tags if tags is None else tags,
        document_hash=digest,
        rerun_of_id=old.id if how == "rerun" else None,
        recovered_from_id=old.id if how == "recover" else None,
        trigger_message=f"{'re-run of' if how == 'rerun' else 'recovery of'} {old.id}",
    )
    kind = "rerun" if how == "rerun" else "recovered"
    await service.record_event(old.id, kind, {"execution_id": record.id, "document_hash": digest})
    return Execution(lab, record.id)


def wait_until(lab: Lab, execution_id: str, until: str, timeout: float | None) -> None:
    """Block until the execution is in phase ``until`` (``"paused"``, ``"in_progress"`` …) or,
    with ``until="approval"``, waits for an approval; ExecutionStateError if it ends first."""
    want = _ALIASES.get(until.strip().lower()) or _phase_name(until)
    reached = threading.Event()
    outcome: list[str] = []

    def check(snapshot: ExecutionSnapshot) -> None:
        phase = snapshot.record.phase
        hit = (
            any(
                t.kind == "listen:approval" and t.status == "WORKFLOW_TASK_IN_PROGRESS"
                for t in snapshot.tasks
            )
            if want == "approval"
            else phase.name == want
        )
        if hit or phase.terminal:
            outcome.append("hit" if hit else phase.name)
            reached.set()

    stop: Callable[[], None] = lab.service.on_change(execution_id, check)
    try:
        check(lab.service.snapshot(execution_id))
        if not reached.wait(timeout):
            raise ExecutionTimeoutError(
                execution_id, timeout or 0, lab.service.get_execution(execution_id).phase.name
            )
    finally:
        stop()
    if outcome[0] != "hit":
        raise ExecutionStateError(f"execution {execution_id} ended {outcome[0]} before reaching {until!r}")


def _phase_name(phase: str) -> str:
    name = phase.strip().upper()
    name = name if name.startswith("EXECUTION_") else f"EXECUTION_{name}"
    if name not in ExecutionPhase.__members__:
        known = ", ".join(p.name.removeprefix("EXECUTION_").lower() for p in ExecutionPhase if p.value)
        raise InvalidInputError(f"until={phase!r} is not a phase; use one of {known}, or 'approval'")
    return name
