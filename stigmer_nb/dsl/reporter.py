"""Progress of one DSL run: task runs, and the transitions shipped to the Stigmer side in order.

Transitions are numbered per execution and sent as signals (to the invoke workflow, or for a
``run: workflow`` child to its parent run, which relays them); what a signal may not have carried
travels again in the run's result, and the receiver keeps one of each number.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow

from ..temporal.names import PROGRESS_SIGNAL
from ..temporal.types import LifecycleNote, ProgressBatch, ProgressEvent, TaskTransition
from .taint import Taint

__all__ = ["Reporter", "TaskRun"]

_MAX_REPORTED_BYTES = 64 * 1024
_MAX_EVENTS_PER_SIGNAL = 200


@dataclass
class TaskRun:
    """One run of one task (iterations, retries and re-runs each get their own)."""

    task_id: str
    reference: str
    name: str
    kind: str
    parent_id: str | None
    attempt: int
    started: datetime


class Reporter:
    """Collects transitions in order and ships them to the invoke workflow as signals."""

    def __init__(
        self,
        execution_id: str | None,
        target: str | None,
        taint: Taint,
        *,
        signal: str = PROGRESS_SIGNAL,
        id_prefix: str = "",
        source: str | None = None,
    ) -> None:
        self.execution_id = execution_id or ""
        self.target = target
        self.taint = taint
        self.signal = signal
        """``ReportProgress`` to the invoke workflow, or ``ReportChildProgress`` to a parent run."""
        self.id_prefix = id_prefix
        """A child run's task ids start with its parent task run's id (unique in the execution)."""
        self.source = source or self.execution_id
        """What the batches say they come from (a child names its workflow id)."""
        self._relayed: dict[str, int] = {}
        """Per child run: the highest of its seqs relayed (its signals and result may overlap)."""
        self.seq = 0
        self._buffer: list[ProgressEvent] = []
        self._unconfirmed: dict[int, ProgressEvent] = {}
        """Shipped by a signal the server has not acknowledged yet."""
        self._counter = 0
        self._closed = False

    @property
    def enabled(self) -> bool:
        """False when nobody listens (the engine was started directly)."""
        return bool(self.target)

    def next_task_id(self) -> str:
        """A task-run id, unique and deterministic within the execution."""
        self._counter += 1
        return f"{self.id_prefix}t{self._counter}"

    def _clean(self, value: Any) -> Any:
        if value is None:
            return None
        text = json.dumps(value, separators=(",", ":"), default=str)
        redacted = self.taint.redact_text(text)
        if redacted is not text:
            text, value = redacted, json.loads(redacted)
        if len(text) > _MAX_REPORTED_BYTES:
            return {"$truncated": True, "bytes": len(text), "preview": text[:1024]}
        return value

    def _push(self, event_kw: dict[str, Any]) -> None:
        self.seq += 1
        if self.enabled:
            self._buffer.append(ProgressEvent(seq=self.seq, at=workflow.now().isoformat(), **event_kw))

    def phase(self, phase: str) -> None:
        """An execution-level phase change."""
        self._push({"phase": phase})

    def note(self, kind: str, detail: dict[str, Any]) -> None:
        """A lifecycle event of the run (``execution_events``), cleaned of secrets like task values."""
        if not self.enabled:
            self._push({})
            return
        cleaned = self._clean(detail)
        self._push({"note": LifecycleNote(kind, cleaned if isinstance(cleaned, dict) else {})})

    def task(
        self,
        run: TaskRun,
        status: str,
        *,
        input: Any = None,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """A task run changing status."""
        if not self.enabled:
            self._push({})  # numbered all the same, so sequence numbers never depend on who listens
            return
        transition = TaskTransition(
            task_id=run.task_id,
            reference=run.reference,
            name=run.name,
            kind=run.kind,
            status=status,
            parent_id=run.parent_id,
            attempt=run.attempt,
            input=self._clean(input),
            output=self._clean(output),
            error=self._clean(error),
        )
        self._push({"task": transition})

    def restore(self, seq: int, task_ids: int, relayed: Mapping[str, int]) -> None:
        """Carry on numbering where a previous run (before continue-as-new) stopped."""
        self.seq, self._counter = seq, task_ids
        self._relayed = dict(relayed)

    @property
    def task_ids(self) -> int:
        """Task-run ids handed out so far."""
        return self._counter

    @property
    def relayed(self) -> dict[str, int]:
        """Per child run, the highest seq relayed."""
        return dict(self._relayed)

    def relay(self, child: str, events: list[ProgressEvent]) -> None:
        """A child run's task transitions, renumbered into this run's sequence, each once, in order."""
        for event in sorted(events, key=lambda e: e.seq):
            if event.seq <= self._relayed.get(child, 0):
                continue
            self._relayed[child] = event.seq
            if event.task is not None:  # its phase changes are the parent's task's business
                self.seq += 1
                if self.enabled:
                    self._buffer.append(ProgressEvent(seq=self.seq, at=event.at, task=event.task))

    def take(self) -> list[ProgressEvent]:
        """Everything the receiver may not have yet, carried by the workflow's result instead.

        A signal scheduled in the last activation may never be sent once the workflow returns,
        so unacknowledged events travel again here; the receiver keeps one of each seq.
        """
        pending = {e.seq: e for e in self._buffer}
        pending.update(self._unconfirmed)
        self._buffer = []
        return [pending[seq] for seq in sorted(pending)]

    def _send(self) -> list[asyncio.Task[None]]:
        tasks = []
        while self._buffer:
            chunk = self._buffer[:_MAX_EVENTS_PER_SIGNAL]
            self._buffer = self._buffer[_MAX_EVENTS_PER_SIGNAL:]
            # Unacknowledged from this moment: the task may not even start before the run returns.
            for event in chunk:
                self._unconfirmed[event.seq] = event
            tasks.append(asyncio.create_task(self._signal(chunk)))
        return tasks

    async def _signal(self, events: list[ProgressEvent]) -> None:
        assert self.target is not None
        handle = workflow.get_external_workflow_handle(self.target)
        try:
            await handle.signal(self.signal, ProgressBatch(self.source, events))
        except Exception as exc:  # the receiver is gone (terminated); the run goes on
            workflow.logger.warning("progress for %s not delivered: %s", self.execution_id, exc)
        else:
            for event in events:
                self._unconfirmed.pop(event.seq, None)

    async def run(self) -> None:
        """Ship batches as transitions pile up (one signal per workflow activation at most)."""
        if not self.enabled:
            return
        while not self._closed:
            await workflow.wait_condition(lambda: bool(self._buffer) or self._closed)
            if self._closed:
                return
            self._send()

    async def flush(self) -> None:
        """Ship what is buffered and wait until the server has it."""
        if self.enabled:
            tasks = self._send()
            if tasks:
                await asyncio.gather(*tasks)

    def close(self) -> None:
        """Stop the background shipper (what remains is taken or flushed by the caller)."""
        self._closed = True
