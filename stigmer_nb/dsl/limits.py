"""Limits on what one execution may do, and the pacing that keeps workflow code from running away.

Workflow code runs in activations: Temporal hears nothing (no progress, no cancel) until an
activation ends, and temporalio calls an activation of more than 2 s a deadlock and retries it
forever. So the engine pauses durably every ``YIELD_EVERY`` task runs (deterministic: counted, not
timed), fails the execution when an activation computes for more than ``SLICE_SECONDS`` anyway,
and bounds each jq evaluation by what is left of that slice.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

from temporalio import workflow

from ..temporal.types import RunLimits
from .jqpool import JqLimits
from .problems import WorkflowProblem, problem

__all__ = ["SLICE_SECONDS", "YIELD_EVERY", "LimitExceeded", "Pace"]

SLICE_SECONDS = 1.5
"""Most workflow-code time per activation (temporalio's deadlock detector fires at 2 s)."""
YIELD_EVERY = 100
"""Task runs after which an activation pauses durably (a 1 ms timer) if nothing else did."""


class LimitExceeded(WorkflowProblem):
    """A limit was hit: the execution fails, and ``try``/``catch`` does not catch it."""

    TITLE = "Limit exceeded"

    @classmethod
    def of(cls, detail: str, *, instance: str | None = None) -> LimitExceeded:  # type: ignore[override]
        """The problem for ``detail``."""
        return cls(problem("runtime", detail, title=cls.TITLE, instance=instance))


class Pace:
    """Per-execution counters shared by the engine and its ``run: workflow`` sub-engines."""

    def __init__(self, limits: RunLimits) -> None:
        self.limits = limits
        self.jq = JqLimits(
            timeout=min(limits.jq_timeout, SLICE_SECONDS),  # a longer wait would end the slice anyway
            memory_bytes=limits.jq_memory_mb * 1024 * 1024,
            max_bytes=limits.max_value_bytes,
        )
        self.task_runs = 0
        self._history = -1
        self._since_pause = 0
        self._slice_started = 0.0

    def _slice(self) -> None:
        # The history grows with every new activation: a cheap, deterministic activation counter.
        length = workflow.info().get_current_history_length()
        if length != self._history:
            self._history = length
            self._since_pause = 0
            self._slice_started = time.monotonic()

    async def task_started(self, ref: str) -> None:
        """Count a task run; pause durably, or fail the execution, when the activation runs long."""
        self._slice()
        self.task_runs += 1
        if self.task_runs > self.limits.max_task_runs:
            raise LimitExceeded.of(
                f"the execution reached {self.limits.max_task_runs:,} task runs (loop iterations, "
                "retries and jumps count); raise max_task_runs (STIGMER_NB_MAX_TASK_RUNS) if it "
                "really needs more",
                instance=ref,
            )
        self._since_pause += 1
        if self._since_pause >= YIELD_EVERY:
            await workflow.sleep(timedelta(milliseconds=1))
            self._slice()
            return
        self._check_slice(ref)

    def _check_slice(self, ref: str) -> float:
        """Seconds left in this activation's slice; raises when it is spent (never on replay)."""
        if workflow.unsafe.is_replaying():
            return SLICE_SECONDS
        spent = time.monotonic() - self._slice_started
        if spent > SLICE_SECONDS:
            raise LimitExceeded.of(
                f"the workflow computed for {spent:.1f} s without a pause ({self._since_pause} task "
                "runs); Temporal would take it for a deadlock: make the expressions cheaper or move "
                "the work into a function call",
                instance=ref,
            )
        return SLICE_SECONDS - spent

    def jq_limits(self, ref: str) -> JqLimits:
        """The limits of the next jq evaluation: never past the end of the slice."""
        self._slice()
        left = self._check_slice(ref)
        if left < self.jq.timeout:
            return dataclasses.replace(self.jq, timeout=max(left, 0.01))
        return self.jq

    def check_items(self, count: int, ref: str) -> None:
        """A ``for`` loop's collection size."""
        if count > self.limits.max_items:
            raise LimitExceeded.of(
                f"for.in yields {count:,} items; at most {self.limits.max_items:,} are allowed: "
                "iterate in pages, or raise max_items (STIGMER_NB_MAX_ITEMS)",
                instance=ref,
            )

    def check_jumps(self, count: int, target: str, ref: str) -> None:
        """Jumps to one task within one run of its list."""
        if count > self.limits.max_jumps:
            raise LimitExceeded.of(
                f"the flow jumped to {target!r} {count:,} times in one run of its list; at most "
                f"{self.limits.max_jumps:,} jumps are allowed: check the loop's exit condition, or "
                "raise max_jumps (STIGMER_NB_MAX_JUMPS)",
                instance=ref,
            )
