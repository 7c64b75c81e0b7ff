"""Names on the wire between the two sides; these are the contract and never change casually."""

from __future__ import annotations

__all__ = [
    "CONTEXT_UPDATE",
    "DSL_WORKFLOW",
    "EXECUTE_WORKFLOW_ACTIVITY",
    "FIND_DOCUMENT_ACTIVITY",
    "FIND_DOCUMENT_UPDATE",
    "INVOKE_WORKFLOW",
    "LOAD_CONTEXT_ACTIVITY",
    "MEMO_ACTIVITY_QUEUE",
    "APPROVAL_EVENT",
    "PAUSE_SIGNAL",
    "RESUME_SIGNAL",
    "STEERING_QUERY",
    "CHILD_PROGRESS_SIGNAL",
    "PROGRESS_SIGNAL",
    "SCHEDULED_WORKFLOW",
    "SCHEDULE_PREFIX",
    "START_SCHEDULED_ACTIVITY",
    "UPDATE_STATUS_ACTIVITY",
    "dsl_workflow_id",
    "invoke_workflow_id",
]

INVOKE_WORKFLOW = "stigmer/workflow-execution/invoke"
"""The thin orchestration workflow on the Stigmer side."""

EXECUTE_WORKFLOW_ACTIVITY = "ExecuteWorkflow"
"""Runner-side activity that starts and awaits the DSL workflow."""

UPDATE_STATUS_ACTIVITY = "UpdateWorkflowExecutionStatus"
"""Stigmer-side local activity that merges status into the history."""

LOAD_CONTEXT_ACTIVITY = "LoadWorkflowExecutionContext"
"""Stigmer-side local activity that reads execution → instance → workflow for a remote runner."""

DSL_WORKFLOW = "ExecuteServerlessWorkflow"
"""Runner-side workflow that interprets the DSL document."""

PROGRESS_SIGNAL = "ReportProgress"
"""Signal carrying task transitions from the DSL workflow to the invoke workflow."""

CHILD_PROGRESS_SIGNAL = "ReportChildProgress"
"""Signal carrying a ``run: workflow`` child's transitions to its parent DSL workflow."""

CONTEXT_UPDATE = "GetExecutionContext"

PAUSE_SIGNAL = "PauseExecution"
"""Signal on ``ExecuteServerlessWorkflow``: stop at the next task boundary."""

RESUME_SIGNAL = "ResumeExecution"
"""Signal on ``ExecuteServerlessWorkflow``: go on after a pause."""

STEERING_QUERY = "GetSteering"
"""Query on ``ExecuteServerlessWorkflow``: pause state and approvals awaited (``SteeringState``)."""

APPROVAL_EVENT = "ai.stigmer.approval"
"""CloudEvent type of a person's decision; a ``listen`` for exactly this type is an approval task."""
"""Update on the invoke workflow answering a runner's request for execution context."""

SCHEDULED_WORKFLOW = "stigmer/workflow-execution/scheduled"
"""Stigmer-side workflow a schedule starts: creates one execution and runs its invoke workflow."""

START_SCHEDULED_ACTIVITY = "CreateScheduledWorkflowExecution"
"""Stigmer-side local activity that records a scheduled execution (PENDING) in the history."""

SCHEDULE_PREFIX = "stigmer-schedule/"
"""Ids of the labs' schedules: ``stigmer-schedule/<stigmer queue>/<workflow slug>`` (Temporal
Schedules, and the repeating workflows of ``after``, ``on`` and time-skipped ``every``)."""

FIND_DOCUMENT_UPDATE = "FindWorkflowDocument"
"""Update on the invoke workflow answering a runner's ``run: workflow`` lookup."""

FIND_DOCUMENT_ACTIVITY = "FindWorkflowDocument"
"""Stigmer-side local activity that reads a workflow's document for ``run: workflow``."""

MEMO_ACTIVITY_QUEUE = "activityTaskQueue"
"""Memo key naming the runner queue, as Stigmer's creator sets it."""


def invoke_workflow_id(execution_id: str) -> str:
    """``stigmer/workflow-execution/invoke/<execution id>``."""
    return f"{INVOKE_WORKFLOW}/{execution_id}"


def dsl_workflow_id(execution_id: str) -> str:
    """``workflow-exec-<execution id>``."""
    return f"workflow-exec-{execution_id}"
