"""Dataclasses that cross Temporal: one argument per workflow, activity, signal and update.

Import-light on purpose, and without ``from __future__ import annotations``: the data converter
resolves these annotations, and real types resolve several times faster than strings.
"""

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DSLInput",
    "DSLResult",
    "ExecuteWorkflowInput",
    "ExecutionContext",
    "Continuation",
    "ExecutionOutcome",
    "FailureDetail",
    "FindDocumentInput",
    "ScheduledInput",
    "InvokeInput",
    "LifecycleNote",
    "LoadContextInput",
    "ProgressBatch",
    "ProgressEvent",
    "RunLimits",
    "StatusUpdate",
    "SteeringState",
    "TaskTransition",
]


@dataclass(frozen=True)
class InvokeInput:
    """Input of ``stigmer/workflow-execution/invoke``."""

    execution_id: str
    workflow_name: str = ""
    timeout_seconds: float = 1800.0
    """How long the execution may take end to end (Stigmer's 30 minutes unless configured)."""


@dataclass(frozen=True)
class TaskTransition:
    """One task run changing status, as the DSL engine reports it."""

    task_id: str
    """Unique per task run within the execution (iterations and re-runs get their own)."""
    reference: str
    """JSON pointer of the task in the document, e.g. ``/do/1/check``."""
    name: str
    kind: str
    """DSL task type: ``set``, ``call``, ``for``, … (``call:http`` style for calls and runs)."""
    status: str
    """A ``WorkflowTaskStatus`` name."""
    parent_id: str | None = None
    attempt: int = 1
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class LifecycleNote:
    """Something that happened to the run rather than to a task (``execution_events``)."""

    kind: str
    """``pause_requested``, ``resume_requested``, ``retrying``, ``event_received``,
    ``approval_requested``, ``approval_given`` …"""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProgressEvent:
    """One ordered report from the runner: a task transition or an execution phase change."""

    seq: int
    """1, 2, 3 … per execution; the receiver applies events in this order, each once."""
    at: str
    """ISO 8601 time of the transition (workflow time)."""
    phase: str | None = None
    task: TaskTransition | None = None
    note: LifecycleNote | None = None


@dataclass(frozen=True)
class ProgressBatch:
    """Payload of the ``ReportProgress`` signal."""

    execution_id: str
    events: list[ProgressEvent] = field(default_factory=list)


@dataclass(frozen=True)
class StatusUpdate:
    """Input of the ``UpdateWorkflowExecutionStatus`` local activity; unset fields are left alone."""

    execution_id: str
    events: list[ProgressEvent] = field(default_factory=list)
    phase: str | None = None
    output: Any = None
    has_output: bool = False
    error: dict[str, Any] | None = None
    started_at: str | None = None
    completed_at: str | None = None
    temporal_workflow_id: str | None = None
    runner_workflow_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    """Where a failed run can be recovered from (see ``FailureDetail.checkpoint``)."""


@dataclass(frozen=True)
class ExecuteWorkflowInput:
    """Input of the runner's ``ExecuteWorkflow`` activity."""

    execution_id: str
    progress_workflow_id: str
    """The invoke workflow that receives ``ReportProgress`` signals."""
    timeout_seconds: float = 1800.0
    """Execution timeout of the DSL workflow it starts."""


@dataclass(frozen=True)
class ExecutionOutcome:
    """Result of ``ExecuteWorkflow`` and of the invoke workflow: the final status."""

    phase: str
    output: Any = None
    error: dict[str, Any] | None = None
    last_seq: int = 0
    """Sequence number of the last progress event; the invoke workflow applies up to it."""
    started_at: str | None = None
    completed_at: str | None = None
    runner_workflow_id: str | None = None
    events: list[ProgressEvent] = field(default_factory=list)
    """Progress not shipped by signal (the tail), applied with the final status."""
    checkpoint: dict[str, Any] | None = None


@dataclass(frozen=True)
class LoadContextInput:
    """Input of the ``GetExecutionContext`` update and the local activity behind it."""

    execution_id: str


@dataclass(frozen=True)
class ExecutionContext:
    """What a runner needs to execute: execution → instance → workflow, read at run time."""

    execution_id: str
    workflow_id: str
    workflow_instance_id: str
    workflow_name: str
    document: dict[str, Any]
    input: Any = None
    env: dict[str, str] = field(default_factory=dict)
    """Non-secret runtime environment values."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Secret runtime environment values (sealed by the payload codec on the wire)."""
    resume: dict[str, Any] | None = None
    """Set on a recovery: the checkpoint of the failed execution to start from (``index`` is the
    failed task's position in this execution's document)."""


@dataclass(frozen=True)
class RunLimits:
    """What one execution may do before it fails with a "Limit exceeded" problem (runner settings)."""

    max_items: int = 10_000
    """Items one ``for`` loop may iterate over."""
    max_task_runs: int = 25_000
    """Task runs in one execution (iterations, retries and jumps each count)."""
    max_jumps: int = 1_000
    """Flow-directive jumps to one task within one run of its task list."""
    jq_timeout: float = 1.0
    """Seconds one jq evaluation may take."""
    jq_memory_mb: int = 1024
    """Memory one jq evaluation may use."""
    max_value_bytes: int = 2 * 1024 * 1024
    """Largest value (as JSON) an expression may produce, and largest workflow output."""
    event_window: float = 60.0
    """Seconds an event delivered before a ``listen`` began still counts for it."""
    continue_after: int = 10_000
    """History events after which a run continues as new at its next top-level task."""


@dataclass(frozen=True)
class Continuation:
    """What a DSL run that continued as new carries over, taken between two top-level tasks."""

    index: int
    """The top-level task to run next."""
    data: Any
    context: Any
    started_at: str
    """When the first run started (``$workflow.startedAt``, the workflow timeout)."""
    seq: int
    """The last progress sequence number used."""
    task_ids: int
    """Task-run ids handed out so far."""
    task_runs: int
    jumps: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Events delivered and not consumed yet, with when they arrived (``arrived``, ISO 8601)."""
    arrived: list[str] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)
    """Strings derived from secrets so far (sealed in payloads like the secrets)."""
    relayed: dict[str, int] = field(default_factory=dict)
    runs: int = 1
    """Runs of this execution's DSL workflow so far."""
    paused: bool = False
    """A pause asked for and not resumed yet."""


@dataclass(frozen=True)
class DSLInput:
    """Input of ``ExecuteServerlessWorkflow``."""

    document: dict[str, Any]
    input: Any = None
    execution_id: str | None = None
    progress_workflow_id: str | None = None
    """Invoke workflow to report progress to; None runs without reporting."""
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    allow_shell: bool = False
    limits: RunLimits = field(default_factory=RunLimits)
    parent_task_id: str | None = None
    """Set when this run is a ``run: workflow`` child: the task run it reports under. Its progress
    then goes to the parent DSL workflow (``progress_workflow_id``), which relays it in order."""
    reference_prefix: str = ""
    """Where the child's tasks sit in the parent's document (``…/run/workflow``)."""
    depth: int = 0
    """``run: workflow`` nesting of this run."""
    continuation: Continuation | None = None
    """Set on a run that continued as new: where the previous run stopped."""
    resume: dict[str, Any] | None = None
    """Set on a recovery: start at top-level task ``index`` with ``data`` and ``context``."""


@dataclass(frozen=True)
class DSLResult:
    """Result of ``ExecuteServerlessWorkflow``."""

    output: Any
    last_seq: int = 0
    started_at: str | None = None
    completed_at: str | None = None
    events: list[ProgressEvent] = field(default_factory=list)
    """Progress not shipped by signal: the tail, carried by the result instead."""


@dataclass(frozen=True)
class FailureDetail:
    """The one detail every stigmer_nb failure carries across Temporal (an ``ApplicationError``'s).

    A failed effect activity carries its problem; a failed DSL run also carries the last sequence
    number it reported and the progress not yet delivered, so the Stigmer side loses nothing.
    """

    problem: dict[str, Any]
    """RFC 7807 problem details (``type``, ``status``, ``title``, ``detail``, ``instance`` …)."""
    last_seq: int = 0
    events: list[ProgressEvent] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None
    """A failed DSL run: the top-level task it failed in, with that task's input and the
    ``$context`` then (``{"task", "index", "data", "context"}``), for ``execution.recover()``."""

    def error(self, message: str, *, type: str, non_retryable: bool = True) -> Any:
        """This detail as the ``ApplicationError`` to raise."""
        from temporalio.exceptions import ApplicationError

        return ApplicationError(message, self, type=type, non_retryable=non_retryable)

    @staticmethod
    def of(error: BaseException | None) -> "FailureDetail | None":
        """The detail an ``ApplicationError`` carries, typed; None when it carries none.

        Failures recorded before this type existed carried ``(problem, last_seq, events)`` as
        positional details; those are read too, so histories of earlier runs still replay.
        """
        from temporalio.converter import value_to_type
        from temporalio.exceptions import ApplicationError

        if not isinstance(error, ApplicationError) or not error.details:
            return None
        first = error.details[0]
        if isinstance(first, FailureDetail):
            return first
        if not isinstance(first, dict):
            return None
        if set(first) <= {"problem", "last_seq", "events", "checkpoint"} and isinstance(
            first.get("problem"), dict
        ):
            return value_to_type(FailureDetail, first)
        rest = error.details[1:]
        last_seq = rest[0] if rest and isinstance(rest[0], int) else 0
        events = rest[1] if len(rest) > 1 and isinstance(rest[1], list) else []
        return FailureDetail(
            problem=first, last_seq=last_seq, events=value_to_type(list[ProgressEvent], events)
        )


@dataclass(frozen=True)
class ScheduledInput:
    """Input of ``stigmer/workflow-execution/scheduled``: start executions of a scheduled workflow."""

    schedule_id: str
    workflow: str
    """The workflow's name in the lab's catalog."""
    input: Any = None
    runner_queue: str = "workflow_execution_runner"
    timeout_seconds: float = 1800.0
    repeat: str = ""
    """"" starts one execution (a Temporal Schedule's tick); ``every`` starts one each interval;
    ``after`` starts the next one an interval after the previous one ended; ``on`` starts one
    each time the events ``on`` asks for have come."""
    interval_seconds: float = 0.0
    on: dict[str, Any] | None = None
    """``schedule.on`` (``repeat`` is ``on``): the events that start a run (its input is their list)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Events delivered and not used yet (kept across continue-as-new)."""
    runs: int = 0
    """Executions started so far (kept across continue-as-new)."""


@dataclass(frozen=True)
class FindDocumentInput:
    """A ``run: workflow`` lookup a runner asks the Stigmer side for."""

    name: str
    namespace: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class SteeringState:
    """Answer of the DSL run's ``GetSteering`` query: pause state and approvals awaited."""

    paused: bool = False
    """A pause is asked for (the run stops, or has stopped, at its next task boundary)."""
    stopped: bool = False
    """The run is stopped between two tasks right now."""
    approvals: list[dict[str, Any]] = field(default_factory=list)
    """Approval tasks waiting: ``{task_id, name, reference, prompt}`` each."""
