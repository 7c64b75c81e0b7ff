"""``ExecuteServerlessWorkflow``: the runner-side Temporal workflow that interprets a DSL document."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    # Passed through: pure, deterministic modules (and the jq C extension) load once per worker.
    from ..temporal.codec import seal_also
    from ..temporal.names import CHILD_PROGRESS_SIGNAL, DSL_WORKFLOW, PROGRESS_SIGNAL
    from ..temporal.types import Continuation, DSLInput, DSLResult, FailureDetail, ProgressBatch
    from .events import EVENT_SIGNAL
    from .interpreter import ContinueRun, Engine
    from .listen import EventInbox
    from .problems import WorkflowProblem, problem
    from .reporter import Reporter, TaskRun
    from .taint import Taint

__all__ = ["ExecuteServerlessWorkflow"]


@workflow.defn(name=DSL_WORKFLOW)
class ExecuteServerlessWorkflow:
    """Interprets ``DSLInput.document``; reports every task transition to the invoke workflow."""

    def __init__(self) -> None:
        self._inbox = EventInbox()
        self._reporter: Reporter | None = None

    @workflow.signal(name=EVENT_SIGNAL)
    def deliver_event(self, event: dict[str, Any]) -> None:
        """A CloudEvent for this workflow's listeners."""
        self._inbox.deliver(event)

    @workflow.signal(name=CHILD_PROGRESS_SIGNAL)
    def child_progress(self, batch: ProgressBatch) -> None:
        """Transitions of a ``run: workflow`` child, relayed in this run's order."""
        if self._reporter is not None:
            self._reporter.relay(batch.execution_id, batch.events)

    @workflow.run
    async def run(self, inp: DSLInput) -> DSLResult:
        """Run the document; a DSL error fails the workflow with the problem as its details."""
        taint = Taint(inp.secrets.values(), sink=seal_also)
        child = inp.parent_task_id is not None
        reporter = Reporter(
            inp.execution_id,
            inp.progress_workflow_id,
            taint,
            signal=CHILD_PROGRESS_SIGNAL if child else PROGRESS_SIGNAL,
            id_prefix=f"{inp.parent_task_id}." if child else "",
            source=workflow.info().workflow_id if child else None,
        )
        self._reporter = reporter
        started = workflow.now()
        cont = inp.continuation
        if cont is not None:
            reporter.restore(cont.seq, cont.task_ids, cont.relayed)
            taint.mark(cont.derived)
            self._inbox.restore(cont.events, cont.arrived)
            started = datetime.fromisoformat(cont.started_at)
        shipper = asyncio.create_task(reporter.run())
        if cont is None:
            reporter.phase("EXECUTION_IN_PROGRESS")
        try:
            parent = None
            if child:
                # The task run of the parent that this run reports under.
                parent = TaskRun(str(inp.parent_task_id), inp.reference_prefix, "", "", None, 1, started)
            engine = Engine(
                inp,
                reporter=reporter,
                events=self._inbox,
                parent=parent,
                reference_prefix=inp.reference_prefix,
                depth=inp.depth,
            )
            output = await engine.run()
        except ContinueRun as stop:
            # Everything reported so far reaches the Stigmer side before this run closes.
            reporter.close()
            await reporter.flush()
            pending = self._inbox.pending()
            workflow.continue_as_new(
                dataclasses.replace(
                    inp,
                    continuation=Continuation(
                        index=stop.index,
                        data=stop.data,
                        context=engine.context,
                        started_at=started.isoformat(),
                        seq=reporter.seq,
                        task_ids=reporter.task_ids,
                        task_runs=engine.pace.task_runs,
                        jumps=stop.jumps,
                        events=[e for e, _ in pending],
                        arrived=[at.isoformat() for _, at in pending],
                        derived=list(taint.derived),
                        relayed=reporter.relayed,
                        runs=(cont.runs if cont else 1) + 1,
                    ),
                )
            )
        except WorkflowProblem as err:
            details = taint.clean(err.problem)
            raise self._failed(details.get("title") or "Workflow failed", details, reporter) from None
        except (asyncio.CancelledError, CancelledError):
            # Tell the Stigmer side which tasks were cut short before going away.
            reporter.close()
            await reporter.flush()
            raise
        except ApplicationError:
            raise
        except Exception as exc:  # a bug in the engine: fail the run, never retry the task forever
            details = taint.clean(
                problem("runtime", f"{type(exc).__name__}: {exc}", title="Engine error", instance="/")
            )
            raise self._failed("Engine error", details, reporter) from exc
        finally:
            reporter.close()
            shipper.cancel()
        return DSLResult(
            output=taint.clean(output),  # nothing computed from a secret leaves the run in clear
            last_seq=reporter.seq,
            started_at=started.isoformat(),
            completed_at=workflow.now().isoformat(),
            events=reporter.take(),
        )

    @staticmethod
    def _failed(message: str, details: dict[str, Any], reporter: Reporter) -> ApplicationError:
        """The run's failure: the problem, the last seq and the unshipped progress."""
        reporter.close()
        error: ApplicationError = FailureDetail(details, reporter.seq, reporter.take()).error(
            message, type="WorkflowProblem"
        )
        return error
