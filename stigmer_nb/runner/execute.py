"""``ExecuteWorkflow``: the runner-side activity that starts and awaits the DSL workflow."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Protocol

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    TerminatedError,
    WorkflowAlreadyStartedError,
)

from ..dsl.problems import problem
from ..errors import StigmerError
from ..settings import Settings
from ..temporal.names import CONTEXT_UPDATE, DSL_WORKFLOW, EXECUTE_WORKFLOW_ACTIVITY, dsl_workflow_id
from ..temporal.types import (
    DSLInput,
    DSLResult,
    ExecuteWorkflowInput,
    ExecutionContext,
    ExecutionOutcome,
    FailureDetail,
)

__all__ = [
    "ContextSource",
    "ExecuteWorkflowActivity",
    "ServiceContext",
    "TemporalContext",
    "TemporalWorkflows",
]

_HEARTBEAT_EVERY = 1.0
"""Seconds between beats when the attempt has no heartbeat timeout; with one, a third of it
(the SDK sends at most one beat per 80% of the timeout)."""


class ContextSource(Protocol):
    """Where a runner reads execution → instance → workflow."""

    async def load(self, inp: ExecuteWorkflowInput) -> ExecutionContext: ...


class ServiceContext:
    """A runner in the lab's process reads the service directly."""

    def __init__(self, service: Any) -> None:
        self._service = service

    async def load(self, inp: ExecuteWorkflowInput) -> ExecutionContext:
        """Read from the in-process service."""
        return self._service.load_context(inp.execution_id)


class TemporalContext:
    """A runner in another process asks the invoke workflow (an Update answered by a local activity)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def load(self, inp: ExecuteWorkflowInput) -> ExecutionContext:
        """Ask the Stigmer side through Temporal."""
        from ..temporal.types import LoadContextInput

        handle = self._client.get_workflow_handle(inp.progress_workflow_id)
        try:
            return await handle.execute_update(
                CONTEXT_UPDATE, LoadContextInput(inp.execution_id), result_type=ExecutionContext
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause.cause if exc.cause is not None and exc.cause.cause is not None else exc.cause
            raise _setup_error(f"could not load the execution context: {cause}") from None


class TemporalWorkflows:
    """``run: workflow`` lookups of a runner in another process: an Update on the invoke workflow."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def __call__(
        self, execution_id: str | None, namespace: str | None, name: str, version: str | None
    ) -> dict[str, Any]:
        """The named workflow's document, read by the Stigmer side."""
        from ..dsl.activities import effect_error
        from ..temporal.names import FIND_DOCUMENT_UPDATE, invoke_workflow_id
        from ..temporal.types import FindDocumentInput

        if not execution_id:
            raise effect_error("configuration", "run: workflow needs the execution it runs in")
        handle = self._client.get_workflow_handle(invoke_workflow_id(execution_id))
        try:
            document: dict[str, Any] = await handle.execute_update(
                FIND_DOCUMENT_UPDATE, FindDocumentInput(name, namespace, version), result_type=dict
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause.cause if exc.cause is not None and exc.cause.cause is not None else exc.cause
            failure = FailureDetail.of(cause)
            detail = failure.problem.get("detail") if failure else str(cause)
            raise effect_error("configuration", str(detail)) from None
        return document


async def _heartbeating(awaitable: Any) -> Any:
    """Await ``awaitable``, heartbeating so a live attempt is never timed out (a run that ends
    before the first beat sends none).

    If the activity is cancelled meanwhile, the awaited future is left to the caller.
    """
    timeout = activity.info().heartbeat_timeout
    every = timeout.total_seconds() / 3 if timeout else _HEARTBEAT_EVERY
    task = asyncio.ensure_future(awaitable)
    while True:
        done, _ = await asyncio.wait({task}, timeout=every)
        if done:
            return task.result()
        activity.heartbeat()


def _setup_error(message: str) -> ApplicationError:
    error: ApplicationError = FailureDetail(problem("runtime", message, title="Setup failed")).error(
        message, type="SetupError"
    )
    return error


def _to_document(context: ExecutionContext) -> dict[str, Any]:
    """The DSL document to run (a Stigmer WorkflowSpec is converted here, as Stigmer's runner does)."""
    from ..dsl.document import is_workflow_spec

    if is_workflow_spec(context.document):
        from .converter import convert_spec

        return convert_spec(context.document)
    return context.document


class ExecuteWorkflowActivity:
    """Registered on the runner queue; starts ``ExecuteServerlessWorkflow`` and waits for it."""

    def __init__(
        self, client: Client, settings: Settings, context: ContextSource, *, active: set[str] | None = None
    ) -> None:
        self._client = client
        self._starter = client
        if settings.time_skipping:
            from temporalio.testing import TimeSkipper

            # Only the DSL workflow gets a virtual clock: its waits, retry delays and timeouts are
            # where time passes. The invoke workflow waits on an activity in real time.
            self._starter = TimeSkipper(client).client
        self._settings = settings
        self._context = context
        self.active = active if active is not None else set()
        """DSL workflow ids this worker is waiting on (events reach them without visibility lag)."""

    @activity.defn(name=EXECUTE_WORKFLOW_ACTIVITY)
    async def execute(self, inp: ExecuteWorkflowInput) -> ExecutionOutcome:
        """Load context → start (or re-attach to) the DSL workflow → wait → final status."""
        try:
            # Heartbeats while asking: with the Stigmer side down the answer may take a while.
            loading = asyncio.ensure_future(self._context.load(inp))
            try:
                context = await _heartbeating(loading)
            except asyncio.CancelledError:
                loading.cancel()
                raise
            document = _to_document(context)
        except ApplicationError:
            raise
        except StigmerError as exc:
            raise _setup_error(str(exc)) from None
        run_id = dsl_workflow_id(inp.execution_id)
        handle = await self._start(run_id, context, document, inp)
        waiter = asyncio.ensure_future(handle.result())
        self.active.add(run_id)
        try:
            result: DSLResult = await _heartbeating(waiter)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is None or not details.cancel_requested or details.worker_shutdown:
                # Not the execution being cancelled: this worker is going away, or the server no
                # longer knows this attempt (timed out, not found). Another attempt re-attaches.
                waiter.cancel()
                raise
            # The invoke workflow was cancelled: cancel the DSL run and wait for it to wind down.
            await handle.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(waiter), timeout=20)
            except (TimeoutError, WorkflowFailureError, asyncio.CancelledError):
                pass
            raise
        except WorkflowFailureError as exc:
            return _failed(exc, run_id)
        finally:
            self.active.discard(run_id)
        return ExecutionOutcome(
            phase="EXECUTION_COMPLETED",
            output=result.output,
            last_seq=result.last_seq,
            started_at=result.started_at,
            completed_at=result.completed_at,
            runner_workflow_id=run_id,
            events=result.events,
        )

    async def _start(
        self, run_id: str, context: ExecutionContext, document: dict[str, Any], inp: ExecuteWorkflowInput
    ) -> WorkflowHandle[Any, DSLResult]:
        try:
            return await self._starter.start_workflow(
                DSL_WORKFLOW,
                DSLInput(
                    document=document,
                    input=context.input,
                    execution_id=inp.execution_id,
                    progress_workflow_id=inp.progress_workflow_id,
                    env=context.env,
                    secrets=context.secrets,
                    allow_shell=self._settings.allow_shell,
                    limits=self._settings.run_limits,
                    resume=context.resume,
                ),
                id=run_id,
                task_queue=self._settings.zigflow_queue,
                # With time skipping the server jumps a run's clock to its next deadline when a
                # short timer is already due, i.e. straight to the execution timeout: leave it unset.
                execution_timeout=None
                if self._settings.time_skipping
                else timedelta(seconds=inp.timeout_seconds),
                result_type=DSLResult,
                # A retried attempt re-attaches to the run in progress and never starts a second one.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return self._client.get_workflow_handle(run_id, result_type=DSLResult)


def _failed(exc: WorkflowFailureError, run_id: str) -> ExecutionOutcome:
    """A failed DSL run is a FAILED status, not an activity error (as Stigmer's runner returns it).

    A cancelled run is a CANCELLED status, unless this attempt was cancelled itself: the invoke
    workflow cancels the run directly, so the run usually ends before the attempt hears of it.
    """
    cause = exc.cause
    if isinstance(cause, CancelledError):
        details = activity.cancellation_details()
        if details is not None and details.cancel_requested:
            raise asyncio.CancelledError()
        return ExecutionOutcome(
            phase="EXECUTION_CANCELLED",
            error=problem("runtime", "the run was cancelled", status=499, title="Cancelled"),
            runner_workflow_id=run_id,
        )
    if isinstance(cause, TerminatedError):
        # Terminated runs report nothing more; the Stigmer side closes their open tasks.
        reason = str(cause.message or "") or "no reason given"
        return ExecutionOutcome(
            phase="EXECUTION_TERMINATED",
            error=problem("runtime", f"terminated: {reason}", status=499, title="Terminated"),
            runner_workflow_id=run_id,
        )
    error = problem(
        "runtime", f"Workflow execution failed: {cause or exc}", title="Workflow execution failed"
    )
    last_seq = 0
    events: list[Any] = []
    checkpoint = None
    failure = FailureDetail.of(cause)
    if failure is not None:
        error, last_seq, events = failure.problem, failure.last_seq, failure.events
        checkpoint = failure.checkpoint
    return ExecutionOutcome(
        phase="EXECUTION_FAILED",
        error=error,
        last_seq=last_seq,
        runner_workflow_id=run_id,
        events=events,
        checkpoint=checkpoint,
    )
