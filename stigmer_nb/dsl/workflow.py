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
    from ..temporal.names import (
        CHILD_PROGRESS_SIGNAL,
        DSL_WORKFLOW,
        PAUSE_SIGNAL,
        PROGRESS_SIGNAL,
        RESUME_SIGNAL,
        STEERING_QUERY,
    )
    from ..temporal.types import (
        Continuation,
        DSLInput,
        DSLResult,
        FailureDetail,
        ProgressBatch,
        SteeringState,
    )
    from .events import EVENT_SIGNAL
    from .interpreter import ContinueRun, Engine
    from .listen import EventInbox
    from .problems import WorkflowProblem, problem
    from .reporter import Reporter, TaskRun
    from .steering import Steering
    from .taint import Taint

__all__ = ["ExecuteServerlessWorkflow"]


@workflow.defn(name=DSL_WORKFLOW)
class ExecuteServerlessWorkflow:
    """Interprets ``DSLInput.document``; reports every task transition to the invoke workflow."""

    def __init__(self) -> None:
        self._inbox = EventInbox()
        self._reporter: Reporter | None = None
        self._steering: Steering | None = None
        self._early: list[tuple[str, Any]] = []
        """Requests and events that came before the run began (replayed once it has a reporter)."""

    @workflow.signal(name=EVENT_SIGNAL)
    def deliver_event(self, event: dict[str, Any]) -> None:
        """A CloudEvent for this workflow's listeners."""
        self._inbox.deliver(event)
        heard = {k: event.get(k) for k in ("type", "id", "source") if isinstance(event, dict)}
        if self._reporter is None:
            self._early.append(("event_received", heard))
        else:
            self._reporter.note("event_received", heard)

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self, reason: str = "") -> None:
        """Stop at the next task boundary (tasks and timers under way go on to their end)."""
        if self._steering is None:
            self._early.append(("pause", reason))
        else:
            self._steering.pause(reason)

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self, reason: str = "") -> None:
        """Go on after a pause."""
        if self._steering is None:
            self._early.append(("resume", reason))
        else:
            self._steering.resume(reason)

    @workflow.query(name=STEERING_QUERY)
    def steering(self) -> SteeringState:
        """Pause state and the approval tasks waiting for a decision."""
        return self._steering.state() if self._steering is not None else SteeringState()

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
        steering = Steering(reporter, paused=cont.paused if cont is not None else False)
        self._steering = steering
        for kind, arg in self._early:
            if kind == "pause":
                steering.pause(arg)
            elif kind == "resume":
                steering.resume(arg)
            else:
                reporter.note(kind, arg)
        self._early = []
        engine: Engine | None = None
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
                steering=steering,
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
                        paused=steering.paused,
                    ),
                )
            )
        except WorkflowProblem as err:
            details = taint.clean(err.problem)
            checkpoint = engine.checkpoint() if engine is not None else None
            raise self._failed(
                details.get("title") or "Workflow failed", details, reporter, checkpoint
            ) from None
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
    def _failed(
        message: str, details: dict[str, Any], reporter: Reporter, checkpoint: dict[str, Any] | None = None
    ) -> ApplicationError:
        """The run's failure: the problem, the last seq, the unshipped progress and where a
        recovery may start."""
        reporter.close()
        error: ApplicationError = FailureDetail(details, reporter.seq, reporter.take(), checkpoint).error(
            message, type="WorkflowProblem"
        )
        return error
