"""Steering one DSL run from outside: pause and resume between tasks, and approvals awaited.

Pause is a request: the run stops at its next task boundary (a task already running, a timer
already set, goes on to its end) and reports EXECUTION_PAUSED; resume lets it go on and reports
EXECUTION_IN_PROGRESS. Every request is noted in the execution's lifecycle log.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from ..temporal.types import SteeringState
from .reporter import Reporter

__all__ = ["Steering"]

_PAUSED = "EXECUTION_PAUSED"
_RUNNING = "EXECUTION_IN_PROGRESS"


class Steering:
    """Pause state and pending approvals of one run (fed by signals, read by a query)."""

    def __init__(self, reporter: Reporter, *, paused: bool = False) -> None:
        self._reporter = reporter
        self.paused = paused
        """Asked to pause and not resumed since."""
        self.stopped = False
        """Stopped at a task boundary right now (the phase says EXECUTION_PAUSED)."""
        self.approvals: dict[str, dict[str, Any]] = {}

    def pause(self, reason: str = "") -> None:
        """Stop at the next task boundary."""
        if not self.paused:
            self.paused = True
            self._reporter.note("pause_requested", {"reason": reason} if reason else {})

    def resume(self, reason: str = "") -> None:
        """Go on after a pause."""
        if self.paused:
            self.paused = False
            self._reporter.note("resume_requested", {"reason": reason} if reason else {})

    async def gate(self) -> None:
        """Called before every task: wait here while paused. Parallel branches all wait; the
        first to stop reports the phase, the first to go on reports it back."""
        if not self.paused:
            return
        if not self.stopped:
            self.stopped = True
            self._reporter.phase(_PAUSED)
        await workflow.wait_condition(lambda: not self.paused)
        if self.stopped:
            self.stopped = False
            self._reporter.phase(_RUNNING)

    def awaiting(self, task_id: str, name: str, reference: str, prompt: Any) -> None:
        """An approval task began waiting for a person's decision."""
        entry = {"task_id": task_id, "name": name, "reference": reference, "prompt": prompt}
        self.approvals[task_id] = entry
        self._reporter.note("approval_requested", entry)

    def decided(self, task_id: str, decision: Any) -> None:
        """The approval task ``task_id`` got its decision."""
        self.approvals.pop(task_id, None)
        data = decision if isinstance(decision, dict) else {"decision": decision}
        detail = {"task_id": task_id, **{k: data.get(k) for k in ("approved", "comment", "by") if k in data}}
        self._reporter.note("approval_given", detail)

    def withdrawn(self, task_id: str, why: str) -> None:
        """The approval task ``task_id`` stopped waiting without a decision (timed out, cancelled,
        its branch lost a race)."""
        if self.approvals.pop(task_id, None) is not None:
            self._reporter.note("approval_withdrawn", {"task_id": task_id, "reason": why})

    def state(self) -> SteeringState:
        """What the ``GetSteering`` query answers."""
        return SteeringState(
            paused=self.paused, stopped=self.stopped, approvals=list(self.approvals.values())
        )
