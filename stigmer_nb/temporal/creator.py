"""The creator: starts ``stigmer/workflow-execution/invoke`` for a persisted execution."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from ..model import ExecutionRecord
from ..settings import Settings
from .names import INVOKE_WORKFLOW, MEMO_ACTIVITY_QUEUE, invoke_workflow_id
from .types import InvokeInput

__all__ = ["InvokeWorkflowCreator"]


class InvokeWorkflowCreator:
    """Callable used as the service's starter (Stigmer's ``InvokeWorkflowExecutionWorkflowCreator``)."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    async def __call__(self, record: ExecutionRecord) -> None:
        """Start the invoke workflow; raises if Temporal refuses (the service records FAILED)."""
        await self._client.start_workflow(
            INVOKE_WORKFLOW,
            InvokeInput(
                execution_id=record.id,
                workflow_name=record.workflow_name,
                timeout_seconds=self._settings.effective_execution_timeout,
            ),
            id=invoke_workflow_id(record.id),
            task_queue=self._settings.stigmer_queue,
            run_timeout=timedelta(seconds=self._settings.effective_execution_timeout),
            memo={MEMO_ACTIVITY_QUEUE: self._settings.runner_queue},
        )
