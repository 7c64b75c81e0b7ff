"""``stigmer/workflow-execution/invoke``: the thin orchestration workflow on the Stigmer side.

It holds no business logic: it calls ``ExecuteWorkflow`` on the runner queue named in its memo,
merges the runner's progress signals into the history in order (through the local activity
``UpdateWorkflowExecutionStatus``), writes the final status, and on a system error records
EXECUTION_FAILED and fails.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from ..dsl.problems import problem
    from .names import (
        CONTEXT_UPDATE,
        EXECUTE_WORKFLOW_ACTIVITY,
        FIND_DOCUMENT_ACTIVITY,
        FIND_DOCUMENT_UPDATE,
        INVOKE_WORKFLOW,
        LOAD_CONTEXT_ACTIVITY,
        MEMO_ACTIVITY_QUEUE,
        PROGRESS_SIGNAL,
        UPDATE_STATUS_ACTIVITY,
        dsl_workflow_id,
    )
    from .types import (
        ExecuteWorkflowInput,
        ExecutionContext,
        ExecutionOutcome,
        FailureDetail,
        FindDocumentInput,
        InvokeInput,
        LoadContextInput,
        ProgressBatch,
        ProgressEvent,
        StatusUpdate,
    )

__all__ = ["InvokeWorkflowExecutionWorkflow"]

_STATUS_TIMEOUT = timedelta(seconds=30)
_STATUS_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3)
_DRAIN_CHUNK = 500
# How long the final status waits for progress signals still in flight before writing anyway.
_TAIL_WAIT = timedelta(seconds=30)
# How long a silent ExecuteWorkflow attempt lives before Temporal retries it elsewhere (a runner
# restarting on the same machine releases its dead attempts at once: see recovery). Every heartbeat
# is a history write: with 1,000 executions waiting, a 5 s timeout (a beat every 4 s) made the
# beats a tenth of the server's work. Cancel does not wait for a beat (see _cancel_runner).
_RUNNER_HEARTBEAT = timedelta(seconds=15)
_CANCEL_RUNNER_PATCH = "cancel-dsl-run-directly"
# Between asks while the DSL run does not exist yet: it usually appears within milliseconds, so
# ask again soon, then each second, for as long as a heartbeat could take to carry the cancel.
_CANCEL_RUNNER_PAUSES = (0.1, 0.2, 0.4, *([1.0] * 11))


@workflow.defn(name=INVOKE_WORKFLOW)
class InvokeWorkflowExecutionWorkflow:
    """One per execution; id ``stigmer/workflow-execution/invoke/<execution id>``."""

    def __init__(self) -> None:
        self._pending: dict[int, ProgressEvent] = {}
        self._applied = 0
        self._execution_id = ""

    @workflow.signal(name=PROGRESS_SIGNAL)
    def report_progress(self, batch: ProgressBatch) -> None:
        """Task transitions from the runner; duplicates and replays are dropped by sequence number."""
        for event in batch.events:
            if event.seq > self._applied:
                self._pending[event.seq] = event

    @workflow.update(name=FIND_DOCUMENT_UPDATE)
    async def find_document(self, inp: FindDocumentInput) -> dict[str, Any]:
        """A ``run: workflow`` document for a runner in another process (read by a local activity)."""
        result: dict[str, Any] = await workflow.execute_local_activity(
            FIND_DOCUMENT_ACTIVITY,
            inp,
            schedule_to_close_timeout=_STATUS_TIMEOUT,
            retry_policy=_STATUS_RETRY,
        )
        return result

    @workflow.update(name=CONTEXT_UPDATE)
    async def get_context(self, inp: LoadContextInput) -> ExecutionContext:
        """Execution → instance → workflow for a runner in another process (read by a local activity)."""
        return await workflow.execute_local_activity(
            LOAD_CONTEXT_ACTIVITY,
            inp,
            result_type=ExecutionContext,
            schedule_to_close_timeout=_STATUS_TIMEOUT,
            retry_policy=_STATUS_RETRY,
        )

    def _ready(self) -> list[ProgressEvent]:
        out = []
        seq = self._applied + 1
        while seq in self._pending and len(out) < _DRAIN_CHUNK:
            out.append(self._pending[seq])
            seq += 1
        return out

    async def _update(self, update: StatusUpdate) -> None:
        """Merge ``update`` into the history. A cancel never cuts a merge short: it lands whole,
        then the cancel goes on (a cancel is delivered once, so the second await is not cut)."""
        write = asyncio.ensure_future(self._write(update))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            await write
            raise

    async def _write(self, update: StatusUpdate) -> None:
        await workflow.execute_local_activity(
            UPDATE_STATUS_ACTIVITY,
            update,
            schedule_to_close_timeout=_STATUS_TIMEOUT,
            retry_policy=_STATUS_RETRY,
        )
        for event in update.events:
            self._pending.pop(event.seq, None)
            self._applied = max(self._applied, event.seq)

    async def _drain(self) -> None:
        while events := self._ready():
            await self._update(StatusUpdate(execution_id=self._execution_id, events=events))

    @workflow.run
    async def run(self, inp: InvokeInput) -> ExecutionOutcome:
        """Execute on the runner, stream its progress into the history, record the outcome."""
        self._execution_id = inp.execution_id
        queue = workflow.memo_value(MEMO_ACTIVITY_QUEUE, "workflow_execution_runner", type_hint=str)
        handle = workflow.start_activity(
            EXECUTE_WORKFLOW_ACTIVITY,
            ExecuteWorkflowInput(
                execution_id=inp.execution_id,
                progress_workflow_id=workflow.info().workflow_id,
                timeout_seconds=inp.timeout_seconds,
            ),
            task_queue=queue,
            result_type=ExecutionOutcome,
            start_to_close_timeout=timedelta(seconds=inp.timeout_seconds),
            # The activity only waits on the DSL workflow; if its worker dies another attempt
            # re-attaches to the same run, so a lost runner costs seconds, not 30 minutes.
            heartbeat_timeout=_RUNNER_HEARTBEAT,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(seconds=5),
                non_retryable_error_types=["SetupError", "WorkflowProblem"],
            ),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"run {inp.workflow_name or inp.execution_id}",
        )
        try:
            while True:
                await workflow.wait_condition(lambda: handle.done() or bool(self._ready()))
                if handle.done():
                    break
                await self._drain()
            outcome = handle.result()
        except ActivityError as err:
            if workflow.cancellation_reason() is not None or isinstance(err.cause, CancelledError):
                return await self._cancel(handle)
            await self._system_error(err)
            raise AssertionError("unreachable") from err
        except (asyncio.CancelledError, CancelledError):
            return await self._cancel(handle)
        try:
            return await self._finish(outcome)
        except (asyncio.CancelledError, CancelledError):
            # Too late to cancel: the run is over. Record how it ended (no second cancel comes).
            return await self._finish(outcome)

    async def _cancel(self, attempt: workflow.ActivityHandle[ExecutionOutcome]) -> ExecutionOutcome:
        """The execution was cancelled: stop the runner's attempt and its DSL run, then record
        CANCELLED (or the outcome, if the run ended before the cancel reached it)."""
        # Let a result that came with the cancel settle first (conditions are checked once
        # everything ready has run): cancelling a handle whose result is in discards the result.
        await workflow.wait_condition(lambda: True)
        if not attempt.done():
            attempt.cancel()
            await self._cancel_runner(attempt)
        try:
            outcome = await attempt
        except (ActivityError, asyncio.CancelledError, CancelledError):
            return await self._cancelled()
        if outcome.phase == "EXECUTION_CANCELLED":
            return await self._cancelled()
        return await self._finish(outcome)

    async def _finish(self, outcome: ExecutionOutcome) -> ExecutionOutcome:
        for event in outcome.events:
            if event.seq > self._applied:
                self._pending[event.seq] = event
        target = outcome.last_seq
        try:
            await workflow.wait_condition(
                lambda: self._applied + len(self._ready()) >= target, timeout=_TAIL_WAIT
            )
        except TimeoutError:
            workflow.logger.warning(
                "progress of %s incomplete: applied %s of %s", self._execution_id, self._applied, target
            )
        while len(self._ready()) >= _DRAIN_CHUNK:
            await self._drain()
        await self._update(
            StatusUpdate(
                execution_id=self._execution_id,
                events=self._ready(),
                phase=outcome.phase,
                output=outcome.output,
                has_output=outcome.output is not None,
                error=outcome.error,
                started_at=outcome.started_at,
                completed_at=outcome.completed_at or workflow.now().isoformat(),
                runner_workflow_id=outcome.runner_workflow_id or dsl_workflow_id(self._execution_id),
                checkpoint=outcome.checkpoint,
            )
        )
        return outcome

    async def _cancel_runner(self, attempt: workflow.ActivityHandle[ExecutionOutcome]) -> None:
        """Cancel the DSL run now: ExecuteWorkflow hears of its own cancel only with its next
        heartbeat (up to 12 s away), and returns as soon as the run it waits on ends.

        The run may not exist yet (the attempt is about to start it): ask again while the
        attempt goes on.
        """
        if not workflow.patched(_CANCEL_RUNNER_PATCH):
            return
        run = workflow.get_external_workflow_handle(dsl_workflow_id(self._execution_id))
        for pause in _CANCEL_RUNNER_PAUSES:
            try:
                await run.cancel()
                return
            except FailureError:
                pass  # not started yet, or already over
            try:
                await workflow.wait_condition(attempt.done, timeout=timedelta(seconds=pause))
                return
            except TimeoutError:
                continue

    async def _cancelled(self) -> ExecutionOutcome:
        """Close the books with what the runner reported about cut-short tasks. No wait for more:
        the DSL run signals those before it ends, and the attempt (done by now) ends after the run,
        so they are already in."""
        await self._update(
            StatusUpdate(
                execution_id=self._execution_id,
                events=self._ready(),
                phase="EXECUTION_CANCELLED",
                error=problem("runtime", "the execution was cancelled", status=499, title="Cancelled"),
                completed_at=workflow.now().isoformat(),
            )
        )
        raise CancelledError("execution cancelled")

    async def _system_error(self, err: ActivityError) -> None:
        cause = err.cause
        message = str(cause.message if isinstance(cause, ApplicationError) else (cause or err))
        error = problem("runtime", f"Workflow execution failed: {message}", title="Workflow execution failed")
        failure = FailureDetail.of(cause)
        if failure is not None:
            error = {**failure.problem}
        try:
            await self._update(
                StatusUpdate(
                    execution_id=self._execution_id,
                    events=self._ready(),
                    phase="EXECUTION_FAILED",
                    error=error,
                    completed_at=workflow.now().isoformat(),
                )
            )
        except ActivityError as update_err:
            workflow.logger.error("could not record failure of %s: %s", self._execution_id, update_err)
        except asyncio.CancelledError:
            pass  # cancelled while recording the failure: it is recorded; the execution failed
        raise FailureDetail(error).error("Workflow execution failed", type="ExecutionFailed") from err
