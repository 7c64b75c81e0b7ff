from datetime import UTC, datetime

from stigmer_nb.model import ExecutionPhase, ExecutionRecord
from stigmer_nb.service.merge import TaskState, merge_status, redact
from stigmer_nb.temporal.types import ProgressEvent, StatusUpdate, TaskTransition

T0 = "2026-01-01T00:00:00+00:00"
T1 = "2026-01-01T00:00:01+00:00"
T2 = "2026-01-01T00:00:02.500000+00:00"


def record() -> ExecutionRecord:
    return ExecutionRecord(
        id="wex-1", name="n", slug="n", workflow_id="wfl-1", workflow_instance_id="win-1", workflow_name="w"
    )


def task_event(seq: int, task_id: str, status: str, at: str = T1, **kw: object) -> ProgressEvent:
    transition = TaskTransition(
        task_id=task_id, reference=f"/do/0/{task_id}", name=task_id, kind="set", status=status, **kw
    )  # type: ignore[arg-type]
    return ProgressEvent(seq=seq, at=at, task=transition)


def test_tasks_accumulate_and_every_transition_is_a_row() -> None:
    rec, tasks = record(), {}
    r1 = merge_status(
        rec,
        tasks,
        StatusUpdate(
            "wex-1",
            events=[
                ProgressEvent(seq=1, at=T0, phase="EXECUTION_IN_PROGRESS"),
                task_event(2, "a", "WORKFLOW_TASK_IN_PROGRESS", T0, input={"x": 1}),
                task_event(3, "a", "WORKFLOW_TASK_COMPLETED", T1, output={"y": 2}),
            ],
        ),
    )
    r2 = merge_status(
        rec,
        tasks,
        StatusUpdate(
            "wex-1",
            events=[
                task_event(4, "b", "WORKFLOW_TASK_IN_PROGRESS", T1),
                task_event(5, "b", "WORKFLOW_TASK_FAILED", T2, error={"title": "x"}),
            ],
        ),
    )
    assert [row["seq"] for row in r1.task_rows + r2.task_rows] == [2, 3, 4, 5]
    assert set(tasks) == {"a", "b"}  # the list grows; nothing is replaced
    a, b = tasks["a"], tasks["b"]
    assert a.status == "WORKFLOW_TASK_COMPLETED" and a.input == {"x": 1} and a.output == {"y": 2}
    assert a.duration_ms == 1000.0
    assert b.status == "WORKFLOW_TASK_FAILED" and b.error == {"title": "x"} and b.duration_ms == 1500.0
    assert rec.phase == ExecutionPhase.EXECUTION_IN_PROGRESS
    assert rec.started_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert rec.last_seq == 5


def test_replayed_events_are_skipped() -> None:
    rec, tasks = record(), {}
    update = StatusUpdate("wex-1", events=[task_event(1, "a", "WORKFLOW_TASK_IN_PROGRESS")])
    assert len(merge_status(rec, tasks, update).task_rows) == 1
    again = merge_status(rec, tasks, update)
    assert again.task_rows == [] and not again.changed


def test_fields_change_only_when_given() -> None:
    rec, tasks = record(), {}
    merge_status(rec, tasks, StatusUpdate("wex-1", phase="EXECUTION_IN_PROGRESS", started_at=T0))
    merge_status(rec, tasks, StatusUpdate("wex-1", error=None))
    assert rec.error is None and rec.output is None
    merge_status(rec, tasks, StatusUpdate("wex-1", output=None, has_output=True))
    assert rec.output is None
    result = merge_status(
        rec,
        tasks,
        StatusUpdate(
            "wex-1", phase="EXECUTION_COMPLETED", output={"ok": True}, has_output=True, completed_at=T2
        ),
    )
    assert result.became_terminal
    assert rec.output == {"ok": True} and rec.completed_at is not None


def test_terminal_phase_is_final_and_late_reports_are_dropped() -> None:
    rec, tasks = record(), {}
    merge_status(rec, tasks, StatusUpdate("wex-1", phase="EXECUTION_CANCELLED"))
    late = merge_status(
        rec,
        tasks,
        StatusUpdate(
            "wex-1", phase="EXECUTION_IN_PROGRESS", events=[task_event(1, "a", "WORKFLOW_TASK_IN_PROGRESS")]
        ),
    )
    assert rec.phase == ExecutionPhase.EXECUTION_CANCELLED
    assert late.task_rows == [] and tasks == {}


def test_nesting_depth_follows_parents() -> None:
    rec, tasks = record(), {}
    merge_status(
        rec,
        tasks,
        StatusUpdate(
            "wex-1",
            events=[
                task_event(1, "outer", "WORKFLOW_TASK_IN_PROGRESS"),
                task_event(2, "inner", "WORKFLOW_TASK_IN_PROGRESS", parent_id="outer"),
                task_event(3, "leaf", "WORKFLOW_TASK_IN_PROGRESS", parent_id="inner"),
            ],
        ),
    )
    assert [tasks[t].depth for t in ("outer", "inner", "leaf")] == [0, 1, 2]


def test_secrets_are_redacted_everywhere() -> None:
    assert redact({"k": "Bearer s3cret", "list": ["s3cret"], "n": 1}, ("s3cret",)) == {
        "k": "Bearer ***",
        "list": ["***"],
        "n": 1,
    }
    rec, tasks = record(), {}
    result = merge_status(
        rec,
        tasks,
        StatusUpdate(
            "wex-1", events=[task_event(1, "a", "WORKFLOW_TASK_COMPLETED", output={"token": "s3cret"})]
        ),
        secrets=("s3cret",),
    )
    assert result.task_rows[0]["output"] == {"token": "***"}
    assert isinstance(tasks["a"], TaskState) and tasks["a"].output == {"token": "***"}


def test_phase_changes_and_run_notes_become_lifecycle_rows() -> None:
    from stigmer_nb.temporal.types import LifecycleNote

    rec, tasks = record(), {}
    result = merge_status(
        rec,
        tasks,
        StatusUpdate(
            "wex-1",
            events=[
                ProgressEvent(seq=1, at=T0, phase="EXECUTION_IN_PROGRESS"),
                ProgressEvent(seq=2, at=T0, note=LifecycleNote("pause_requested", {"reason": "token abc"})),
                ProgressEvent(seq=3, at=T1, phase="EXECUTION_PAUSED"),
                ProgressEvent(seq=4, at=T1, note=LifecycleNote("resume_requested", {})),
                ProgressEvent(seq=5, at=T2, phase="EXECUTION_IN_PROGRESS"),
            ],
        ),
        secrets=("abc",),
    )
    rows = [(r["seq"], r["kind"]) for r in result.event_rows]
    assert rows == [
        (1, "started"),
        (2, "pause_requested"),
        (3, "paused"),
        (4, "resume_requested"),
        (5, "resumed"),
    ]
    assert result.event_rows[1]["detail"] == {"reason": "token ***"}  # secrets redacted like task values
    done = merge_status(rec, tasks, StatusUpdate("wex-1", phase="EXECUTION_COMPLETED"))
    assert [(r["seq"], r["kind"]) for r in done.event_rows] == [(None, "completed")]
    assert merge_status(rec, tasks, StatusUpdate("wex-1", phase="EXECUTION_FAILED")).event_rows == []


def test_terminated_closes_open_tasks_with_the_reason() -> None:
    rec, tasks = record(), {}
    merge_status(
        rec,
        tasks,
        StatusUpdate(
            "wex-1",
            events=[
                task_event(1, "a", "WORKFLOW_TASK_IN_PROGRESS", T0),
                task_event(2, "a", "WORKFLOW_TASK_COMPLETED", T0),
                task_event(3, "b", "WORKFLOW_TASK_IN_PROGRESS", T1),
            ],
        ),
    )
    error = {"title": "Terminated", "detail": "terminated: stop"}
    result = merge_status(
        rec, tasks, StatusUpdate("wex-1", phase="EXECUTION_TERMINATED", error=error, completed_at=T2)
    )
    assert [(r["seq"], r["task_id"], r["status"]) for r in result.task_rows] == [
        (4, "b", "WORKFLOW_TASK_FAILED")
    ]
    assert tasks["b"].error == error and tasks["b"].duration_ms == 1500.0
    assert tasks["a"].status == "WORKFLOW_TASK_COMPLETED"
    assert result.became_terminal and rec.last_seq == 4
    assert result.event_rows[0]["detail"] == {"phase": "EXECUTION_TERMINATED", "reason": "terminated: stop"}


def test_a_failed_runs_checkpoint_is_kept_and_redacted() -> None:
    rec, tasks = record(), {}
    checkpoint = {"task": "b", "index": 1, "data": {"k": "abc"}, "context": {}}
    merge_status(
        rec,
        tasks,
        StatusUpdate("wex-1", phase="EXECUTION_FAILED", error={"title": "x"}, checkpoint=checkpoint),
        secrets=("abc",),
    )
    assert rec.checkpoint == {"task": "b", "index": 1, "data": {"k": "***"}, "context": {}}
