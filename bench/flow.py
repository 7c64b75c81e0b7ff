"""Foundation benchmark: lab start-up, and 1-task latency through the full flow against raw temporalio.

Run: ``python -m bench.flow`` (or ``make bench``). Both sides run on the same embedded server in the
same process and run, so the ratio cancels out how busy the machine is.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import stigmer_nb
from bench.baseline import BaselineWorkflow, baseline_activity
from bench.common import markdown_table, stats, write_result
from stigmer_nb.lab import Lab

ONE_TASK = """
document: {dsl: '1.0.0', namespace: bench, name: one-task, version: '1.0.0'}
do:
  - only:
      set: {n: '${ .n + 1 }'}
"""
RUNS = int(os.environ.get("BENCH_RUNS", "50"))


async def _baseline_latency(client: Client, runs: int) -> list[float]:
    wf_queue, act_queue = f"bench-wf-{uuid.uuid4()}", f"bench-act-{uuid.uuid4()}"
    runner = UnsandboxedWorkflowRunner()
    async with (
        Worker(client, task_queue=wf_queue, workflows=[BaselineWorkflow], workflow_runner=runner),
        Worker(client, task_queue=act_queue, activities=[baseline_activity]),
    ):
        samples = []
        for i in range(runs + 5):
            t0 = time.perf_counter()
            await client.execute_workflow(
                BaselineWorkflow.run, [act_queue, i], id=f"baseline-{uuid.uuid4()}", task_queue=wf_queue
            )
            if i >= 5:  # warm-up runs are not counted
                samples.append(time.perf_counter() - t0)
        return samples


def _flow_latency(lab: Lab, runs: int) -> list[float]:
    samples = []
    for i in range(runs + 5):
        t0 = time.perf_counter()
        execution = lab.run(ONE_TASK, input={"n": i}).wait(60)
        elapsed = time.perf_counter() - t0
        assert execution.phase == "EXECUTION_COMPLETED", execution.error
        if i >= 5:
            samples.append(elapsed)
    return samples


def main() -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="bench-flow-"))
    t0 = time.perf_counter()
    lab = stigmer_nb.start(home=home / "cold")
    cold = time.perf_counter() - t0
    lab.stop()
    warm_samples = []
    for i in range(3):
        t0 = time.perf_counter()
        lab = stigmer_nb.start(home=home / f"warm{i}")
        warm_samples.append(time.perf_counter() - t0)
        if i < 2:
            lab.stop()
    flow = _flow_latency(lab, RUNS)
    baseline = lab._check().call(_baseline_latency(lab.client, RUNS))
    lab.stop()
    f, b = stats(flow), stats(baseline)
    ratio = f["median"] / b["median"]
    result = {
        "start_cold_s": cold,
        "start_warm_s": stats(warm_samples),
        "flow_latency_s": f,
        "baseline_latency_s": b,
        "latency_ratio_median": ratio,
        "latency_ratio_p95": f["p95"] / b["p95"],
        "targets": {"latency_ratio": 3.0, "start_warm_s": 1.5},
    }
    write_result("flow", result)
    rows = [
        {"measure": "lab start, cold (s)", "value": cold, "target": ""},
        {
            "measure": "lab start, warm (s, median of 3)",
            "value": stats(warm_samples)["median"],
            "target": "≤ 1.5",
        },
        {
            "measure": f"1-task full flow latency (ms, median of {RUNS})",
            "value": f["median"] * 1000,
            "target": "",
        },
        {"measure": "1-task full flow latency (ms, p95)", "value": f["p95"] * 1000, "target": ""},
        {
            "measure": f"raw two-queue baseline (ms, median of {RUNS})",
            "value": b["median"] * 1000,
            "target": "",
        },
        {"measure": "raw two-queue baseline (ms, p95)", "value": b["p95"] * 1000, "target": ""},
        {"measure": "latency ratio (median)", "value": ratio, "target": "≤ 3.0"},
    ]
    print(markdown_table(rows, ["measure", "value", "target"]))
    return result


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # temporalio's bridge may abort at interpreter shutdown (sdk-python#300)
