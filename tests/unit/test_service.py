"""The create pipeline, its error paths and subscribers, on a real DuckDB file and no server."""

import asyncio
import threading
from pathlib import Path

import pytest

from stigmer_nb.errors import (
    AlreadyExistsError,
    ExecutionStartError,
    InputTooLargeError,
    InvalidInputError,
    NotFoundError,
)
from stigmer_nb.model import ExecutionPhase, ExecutionRecord
from stigmer_nb.service import Service
from stigmer_nb.store import HistoryStore
from stigmer_nb.temporal.types import ProgressEvent, StatusUpdate, TaskTransition

DOC = {
    "document": {"dsl": "1.0.0", "namespace": "t", "name": "My Flow", "version": "1.0.0"},
    "do": [{"a": {"set": {"x": 1}}}],
}


@pytest.fixture
def service(tmp_path: Path):
    store = HistoryStore(tmp_path / "h.duckdb")
    started: list[str] = []

    async def starter(record: ExecutionRecord) -> None:
        started.append(record.id)

    svc = Service(store, max_input_bytes=1000)
    svc.starter = starter
    svc.started = started  # type: ignore[attr-defined]
    yield svc
    store.close()


def run(coro):
    return asyncio.run(coro)


def test_workflow_gets_a_default_instance_once(service: Service) -> None:
    wf = run(service.apply_workflow(DOC))
    assert wf.id.startswith("wfl-") and wf.slug == "my-flow"
    inst = service.get_instance(wf.default_instance_id)
    assert inst.name == "My Flow-default" and inst.slug == "my-flow-default" and inst.workflow_id == wf.id
    again = run(service.apply_workflow(DOC))
    assert again.id == wf.id and again.default_instance_id == inst.id
    assert service.store.rows("SELECT count(*) FROM workflow_instances")[0][0] == 1


def test_create_by_workflow_persists_pending_then_starts(service: Service) -> None:
    wf = run(service.apply_workflow(DOC))
    rec = run(service.create_execution(workflow="my-flow", name="Test Execution", input={"q": 1}))
    assert rec.id.startswith("wex-") and rec.slug == "test-execution"
    assert rec.phase == ExecutionPhase.EXECUTION_PENDING
    assert rec.workflow_instance_id == wf.default_instance_id
    assert rec.temporal_workflow_id == f"stigmer/workflow-execution/invoke/{rec.id}"
    assert service.started == [rec.id]  # type: ignore[attr-defined]
    row = service.store.rows("SELECT phase, input FROM workflow_executions WHERE id = ?", [rec.id])
    assert row == [("EXECUTION_PENDING", '{"q":1}')]


def test_create_by_instance(service: Service) -> None:
    wf = run(service.apply_workflow(DOC))
    rec = run(service.create_execution(instance=wf.default_instance_id))
    assert rec.workflow_id == wf.id and rec.name.startswith("execution-")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, InvalidInputError, "either a workflow or a workflow instance"),
        ({"workflow": "my-flw"}, NotFoundError, "did you mean 'my-flow'"),
        ({"instance": "win-nope"}, NotFoundError, "no workflow instance"),
        ({"workflow": "my-flow", "input": {"x": object()}}, InvalidInputError, "not JSON"),
        ({"workflow": "my-flow", "input": "x" * 2000}, InputTooLargeError, "over the 1,000-byte limit"),
        ({"workflow": "my-flow", "runtime_env": {"K": ""}}, InvalidInputError, "empty"),
        (
            {"workflow": "my-flow", "runtime_env": {"K": {"value": "v", "secret": True}}},
            InvalidInputError,
            "unknown",
        ),
        ({"workflow": "my-flow", "name": "!!!"}, InvalidInputError, "slug"),
    ],
)
def test_bad_input_writes_nothing(service: Service, kwargs, error, match) -> None:
    run(service.apply_workflow(DOC))
    with pytest.raises(error, match=match):
        run(service.create_execution(**kwargs))
    assert service.store.rows("SELECT count(*) FROM workflow_executions")[0][0] == 0
    assert service.started == []  # type: ignore[attr-defined]


def test_duplicate_names_are_refused(service: Service) -> None:
    run(service.apply_workflow(DOC))
    run(service.create_execution(workflow="my-flow", name="once"))
    with pytest.raises(AlreadyExistsError, match="once"):
        run(service.create_execution(workflow="my-flow", name="Once"))


def test_failed_start_is_saved_failed_and_raised(service: Service) -> None:
    async def broken(record: ExecutionRecord) -> None:
        raise RuntimeError("server said no")

    service.starter = broken
    run(service.apply_workflow(DOC))
    with pytest.raises(ExecutionStartError, match="server said no") as info:
        run(service.create_execution(workflow="my-flow"))
    rec = service.get_execution(info.value.execution_id)
    assert rec.phase == ExecutionPhase.EXECUTION_FAILED
    assert "Failed to start Temporal workflow: server said no" in rec.error["detail"]


def test_secrets_never_reach_the_history(service: Service) -> None:
    seen: list[str] = []
    service.secret_sink = seen.extend
    run(service.apply_workflow(DOC))
    rec = run(
        service.create_execution(
            workflow="my-flow",
            input={"token": "hunter2"},
            runtime_env={"API": {"value": "hunter2", "is_secret": True}, "MODE": "x"},
        )
    )
    assert seen == ["hunter2"]
    assert service.load_context(rec.id).secrets == {"API": "hunter2"}
    assert service.load_context(rec.id).env == {"MODE": "x"}
    dump = str(service.store.rows("SELECT * FROM workflow_executions"))
    assert "hunter2" not in dump and "***" in dump


def transition(seq: int, status: str) -> ProgressEvent:
    return ProgressEvent(
        seq=seq,
        at="2026-01-01T00:00:00+00:00",
        task=TaskTransition(task_id="t1", reference="/do/0/a", name="a", kind="set", status=status),
    )


def test_subscribers_get_current_then_updates_then_end(service: Service) -> None:
    run(service.apply_workflow(DOC))
    rec = run(service.create_execution(workflow="my-flow"))
    sub = service.subscribe(rec.id)
    first = sub.get(1)
    assert first is not None and first.record.phase == ExecutionPhase.EXECUTION_PENDING
    run(service.update_status(StatusUpdate(rec.id, events=[transition(1, "WORKFLOW_TASK_IN_PROGRESS")])))
    second = sub.get(1)
    assert second is not None and second.tasks[0].status == "WORKFLOW_TASK_IN_PROGRESS"
    run(
        service.update_status(
            StatusUpdate(
                rec.id, events=[transition(2, "WORKFLOW_TASK_COMPLETED")], phase="EXECUTION_COMPLETED"
            )
        )
    )
    last = sub.get(1)
    assert last is not None and last.terminal
    assert sub.get(0.1) is None  # the stream ended
    assert service.wait_event(rec.id).is_set()


def test_a_slow_subscriber_never_blocks_and_still_sees_the_end(service: Service) -> None:
    run(service.apply_workflow(DOC))
    rec = run(service.create_execution(workflow="my-flow"))
    sub = service.subscribe(rec.id)  # never read until the end
    for seq in range(1, 301):
        run(
            service.update_status(StatusUpdate(rec.id, events=[transition(seq, "WORKFLOW_TASK_IN_PROGRESS")]))
        )
    run(service.update_status(StatusUpdate(rec.id, phase="EXECUTION_FAILED", error={"title": "x"})))
    states = list(sub)
    assert states[-1].record.phase == ExecutionPhase.EXECUTION_FAILED
    assert len(states) == 1  # intermediate states were coalesced, not queued


def test_async_subscription(service: Service) -> None:
    run(service.apply_workflow(DOC))
    rec = run(service.create_execution(workflow="my-flow"))

    async def scenario() -> list[str]:
        phases = []

        async def consume() -> None:
            async for snap in service.subscribe(rec.id):
                phases.append(snap.record.phase.name)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        await service.update_status(StatusUpdate(rec.id, phase="EXECUTION_COMPLETED"))
        await asyncio.wait_for(task, 5)
        return phases

    assert run(scenario()) == ["EXECUTION_PENDING", "EXECUTION_COMPLETED"]


def test_wait_event_from_another_thread(service: Service) -> None:
    run(service.apply_workflow(DOC))
    rec = run(service.create_execution(workflow="my-flow"))
    event = service.wait_event(rec.id)
    t = threading.Timer(
        0.1, lambda: run(service.update_status(StatusUpdate(rec.id, phase="EXECUTION_COMPLETED")))
    )
    t.start()
    assert event.wait(5)


def test_replayed_reports_never_write_twice_even_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "replay.duckdb"
    store = HistoryStore(path)
    service = Service(store)
    run(service.apply_workflow(DOC))
    rec = run(service.create_execution(workflow="my-flow"))
    batch = StatusUpdate(
        rec.id, events=[transition(1, "WORKFLOW_TASK_IN_PROGRESS"), transition(2, "WORKFLOW_TASK_COMPLETED")]
    )
    run(service.update_status(batch))
    run(service.update_status(batch))  # a retried local activity
    store.close()
    store = HistoryStore(path)  # a new lab on the same file: the merge state comes from the history
    service = Service(store)
    run(service.update_status(batch))  # replayed after the restart
    run(service.update_status(StatusUpdate(rec.id, events=[transition(2, "WORKFLOW_TASK_COMPLETED"),
                                                           transition(3, "WORKFLOW_TASK_COMPLETED")])))  # fmt: skip
    assert [r[0] for r in store.rows("SELECT seq FROM task_updates ORDER BY seq")] == [1, 2, 3]
    store.close()
