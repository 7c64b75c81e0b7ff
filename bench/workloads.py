"""Workloads shared by the benchmarks: documents, and a raw temporalio baseline runner."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.baseline import BaselineWorkflow, baseline_activity

__all__ = ["ONE_TASK", "TEN_TASKS", "baseline_workers", "cpu_seconds", "run_baseline"]

ONE_TASK = """
document: {dsl: '1.0.0', namespace: bench, name: one-task, version: '1.0.0'}
do:
  - only:
      set: {n: '${ .n + 1 }'}
"""

TEN_TASKS = "document: {dsl: '1.0.0', namespace: bench, name: ten-tasks, version: '1.0.0'}\ndo:\n" + "".join(
    f"  - step{i}:\n      set: {{n: '${{ .n + 1 }}'}}\n" for i in range(10)
)


@asynccontextmanager
async def baseline_workers(client: Client) -> AsyncIterator[tuple[str, str]]:
    """Workers for the raw two-queue baseline; yields (workflow queue, activity queue)."""
    wf_queue, act_queue = f"bench-wf-{uuid.uuid4()}", f"bench-act-{uuid.uuid4()}"
    async with (
        Worker(
            client,
            task_queue=wf_queue,
            workflows=[BaselineWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
        Worker(client, task_queue=act_queue, activities=[baseline_activity]),
    ):
        yield wf_queue, act_queue


async def run_baseline(client: Client, wf_queue: str, act_queue: str, n: int = 0) -> float:
    """One raw baseline run; returns its latency in seconds."""
    t0 = time.perf_counter()
    await client.execute_workflow(
        BaselineWorkflow.run, [act_queue, n], id=f"baseline-{uuid.uuid4()}", task_queue=wf_queue
    )
    return time.perf_counter() - t0


async def run_baseline_concurrent(client: Client, wf_queue: str, act_queue: str, n: int) -> float:
    """``n`` raw baseline runs at once; returns the wall time for all of them."""
    t0 = time.perf_counter()
    await asyncio.gather(*(run_baseline(client, wf_queue, act_queue, i) for i in range(n)))
    return time.perf_counter() - t0


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default)."""
    fields = Path(f"/proc/{pid or os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
