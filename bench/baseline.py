"""The raw temporalio baseline: a workflow calling one activity on another queue, same server."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

__all__ = ["BaselineWorkflow", "SignalReceiverWorkflow", "SignalSenderWorkflow", "baseline_activity"]


@activity.defn(name="BaselineActivity")
async def baseline_activity(n: int) -> int:
    """Does nearly nothing, like a `set` task."""
    return n + 1


@workflow.defn(name="BaselineWorkflow")
class BaselineWorkflow:
    """Orchestrates one activity on the queue named in its input."""

    @workflow.run
    async def run(self, args: list[str | int]) -> int:
        queue, n = str(args[0]), int(args[1])
        return await workflow.execute_activity(
            "BaselineActivity", n, task_queue=queue, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="BaselineSignalReceiver")
class SignalReceiverWorkflow:
    """Waits for one signal: the far end of the bare Temporal trip that progress reports make."""

    def __init__(self) -> None:
        self._got = False

    @workflow.signal(name="hit")
    def hit(self) -> None:
        self._got = True

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._got)


@workflow.defn(name="BaselineSignalSender")
class SignalSenderWorkflow:
    """Signals the receiver named in its input from its first task, as the DSL run reports."""

    @workflow.run
    async def run(self, receiver_id: str) -> None:
        await workflow.get_external_workflow_handle(receiver_id).signal("hit")
