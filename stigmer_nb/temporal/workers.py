"""Worker wiring: each side registers only its own pieces."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner

from .. import __version__
from ..dsl.activities import EffectActivities
from ..dsl.workflow import ExecuteServerlessWorkflow
from ..runner.execute import ContextSource, ExecuteWorkflowActivity
from ..service import Service
from ..settings import Settings
from .invoke import InvokeWorkflowExecutionWorkflow
from .scheduled import ScheduledExecutionWorkflow
from .status import StatusActivities

__all__ = ["runner_side_workers", "stigmer_side_workers"]

# Recovery in seconds when a worker dies: its sticky queue is abandoned quickly.
_STICKY_TIMEOUT = timedelta(seconds=3)
# ExecuteWorkflow holds its slot for the whole run (it waits on the DSL workflow), so the slots
# are how many executions run at once: with the SDK's default of 100, a 101st run waiting for an
# event or a timer would not even start until another finished. A waiting attempt is one
# coroutine and a heartbeat every few seconds.
_RUNNING_EXECUTIONS = 10_000
# Without one, temporalio hashes the bytecode of every loaded module (~0.15 s of each start).
_BUILD_ID = f"stigmer-nb-{__version__}"


def _runner() -> WorkflowRunner:
    """Our workflows run unsandboxed, in the process that owns the DuckDB history.

    While any sandboxed activation runs, temporalio swaps ``sys.modules`` for a thread-local
    mapping; DuckDB's C++ binding casts ``sys.modules`` to a dict and aborts the whole process
    with ``std::bad_cast`` when another thread queries at that moment (reproduced here: a DuckDB
    ``.df()`` loop next to the sandbox's ``sys.modules`` override dies within milliseconds). The
    workflows are written deterministically (workflow.now/random/uuid4 only; jq without now/env)
    and hold no module state, so the sandbox's safety net is traded for a lab that cannot crash.
    """
    return UnsandboxedWorkflowRunner()


def stigmer_side_workers(client: Client, settings: Settings, service: Service) -> list[Worker]:
    """The orchestration worker: the invoke workflow and its local activities, nothing else."""
    status = StatusActivities(service)
    return [
        Worker(
            client,
            build_id=_BUILD_ID,
            task_queue=settings.stigmer_queue,
            workflows=[InvokeWorkflowExecutionWorkflow, ScheduledExecutionWorkflow],
            activities=status.all(),
            no_remote_activities=True,  # its activities only ever run as local activities
            workflow_runner=_runner(),
            sticky_queue_schedule_to_start_timeout=_STICKY_TIMEOUT,
        )
    ]


def runner_side_workers(
    client: Client,
    settings: Settings,
    *,
    context: ContextSource,
    effects: EffectActivities,
    active: set[str] | None = None,
) -> list[Worker]:
    """The execution workers: ``ExecuteWorkflow`` on the runner queue; the DSL workflow and its
    effect activities on the zigflow queue."""
    execute = ExecuteWorkflowActivity(client, settings, context, active=active)
    workers: Sequence[Worker] = [
        Worker(
            client,
            build_id=_BUILD_ID,
            task_queue=settings.runner_queue,
            activities=[execute.execute],
            max_concurrent_activities=_RUNNING_EXECUTIONS,
        ),
        Worker(
            client,
            build_id=_BUILD_ID,
            task_queue=settings.zigflow_queue,
            workflows=[ExecuteServerlessWorkflow],
            activities=effects.all(),
            workflow_runner=_runner(),
            sticky_queue_schedule_to_start_timeout=_STICKY_TIMEOUT,
        ),
    ]
    return list(workers)
