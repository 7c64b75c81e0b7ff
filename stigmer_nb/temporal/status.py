"""Stigmer-side local activities: the status merge into the history, and context for runners."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..dsl.problems import problem
from ..errors import NotFoundError, StigmerError
from ..service import Service
from .names import (
    FIND_DOCUMENT_ACTIVITY,
    LOAD_CONTEXT_ACTIVITY,
    START_SCHEDULED_ACTIVITY,
    UPDATE_STATUS_ACTIVITY,
)
from .types import (
    ExecutionContext,
    FailureDetail,
    FindDocumentInput,
    LoadContextInput,
    ScheduledInput,
    StatusUpdate,
)

__all__ = ["StatusActivities"]


class StatusActivities:
    """Activities bound to the lab's service; registered on the Stigmer-side worker only."""

    def __init__(self, service: Service) -> None:
        self._service = service

    @activity.defn(name=UPDATE_STATUS_ACTIVITY)
    async def update_status(self, update: StatusUpdate) -> None:
        """Merge progress and status into the history; returns once it is committed."""
        try:
            await self._service.update_status(update)
        except NotFoundError as exc:
            raise ApplicationError(str(exc), type="NotFound", non_retryable=True) from None

    @activity.defn(name=LOAD_CONTEXT_ACTIVITY)
    async def load_context(self, inp: LoadContextInput) -> ExecutionContext:
        """Execution → instance → workflow, read fresh from the service."""
        try:
            return self._service.load_context(inp.execution_id)
        except NotFoundError as exc:
            raise ApplicationError(str(exc), type="SetupError", non_retryable=True) from None

    @activity.defn(name=START_SCHEDULED_ACTIVITY)
    async def create_scheduled(self, inp: ScheduledInput) -> str:
        """Record one execution of a scheduled workflow (PENDING); the schedule's workflow starts it."""
        try:
            record = await self._service.create_execution(
                workflow=inp.workflow,
                input=inp.input,
                trigger_message=f"schedule {inp.schedule_id}",
                start=False,
            )
        except StigmerError as exc:  # the workflow was removed, the input refused: no retry helps
            raise ApplicationError(str(exc), type="SetupError", non_retryable=True) from None
        return record.id

    @activity.defn(name=FIND_DOCUMENT_ACTIVITY)
    async def find_document(self, inp: FindDocumentInput) -> dict[str, Any]:
        """The document ``run: workflow`` names, for a runner in another process."""
        try:
            return self._service.find_document(inp.namespace, inp.name, inp.version)
        except StigmerError as exc:
            raise FailureDetail(problem("configuration", f"run.workflow: {exc}")).error(
                str(exc), type="SetupError"
            ) from None

    def all(self) -> list[object]:
        """Every activity here, for worker registration."""
        return [self.update_status, self.load_context, self.create_scheduled, self.find_document]
