"""Widget test helpers: snapshots built by hand, a fake clock, and comms that count their messages."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from stigmer_nb.model import ExecutionPhase, ExecutionRecord
from stigmer_nb.service import ExecutionSnapshot, TaskState

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count()


@dataclass
class FakeClock:
    """Monotonic and wall-clock time that only moves when a test says so."""

    t: float = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Sent:
    """Every comm message widgets sent: (clock time, comm id, message type, data)."""

    clock: FakeClock | None = None
    messages: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)

    def updates(self, comm_ids: set[str] | None = None) -> list[tuple[float, str, str, dict[str, Any]]]:
        return [m for m in self.messages if m[2] == "comm_msg" and (comm_ids is None or m[1] in comm_ids)]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sent]:
    """Widgets created in the test get comms that record what they send."""
    record = Sent()

    class CountingComm(BaseComm):
        def publish_msg(
            self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
        ) -> None:
            when = record.clock.t if record.clock is not None else 0.0
            record.messages.append((when, self.comm_id, msg_type, data or {}))

    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: CountingComm(*a, **k))
    yield record


def task(
    name: str,
    status: str = "WORKFLOW_TASK_COMPLETED",
    *,
    start: float = 0.0,
    end: float | None = 0.1,
    depth: int = 0,
    kind: str = "set",
    error: dict[str, Any] | None = None,
    attempt: int = 1,
    parent: str | None = None,
) -> TaskState:
    n = next(_ids)
    return TaskState(
        task_id=f"t{n}",
        reference=f"/do/{n}/{name}",
        name=name,
        kind=kind,
        status=status,
        parent_id=parent,
        attempt=attempt,
        started_at=T0 + timedelta(seconds=start),
        completed_at=T0 + timedelta(seconds=end) if end is not None else None,
        error=error,
        first_seq=n,
        depth=depth,
    )


def snapshot(
    phase: str = "EXECUTION_IN_PROGRESS",
    tasks: list[TaskState] | None = None,
    *,
    eid: str = "wex-test",
    seq: int = 1,
    output: Any = None,
    error: dict[str, Any] | None = None,
    input: Any = None,
    duration: float | None = 1.5,
) -> ExecutionSnapshot:
    terminal = ExecutionPhase[phase].terminal
    record = ExecutionRecord(
        id=eid,
        name=f"run-{eid}",
        slug=f"run-{eid}",
        workflow_id="wfl-1",
        workflow_instance_id="win-1",
        workflow_name="greeter",
        phase=ExecutionPhase[phase],
        input=input,
        output=output,
        error=error,
        created_at=T0 - timedelta(seconds=0.2),
        started_at=T0 if phase != "EXECUTION_PENDING" else None,
        completed_at=T0 + timedelta(seconds=duration) if terminal and duration is not None else None,
        updated_at=T0,
        last_seq=seq,
    )
    return ExecutionSnapshot(record, tuple(tasks or ()))
