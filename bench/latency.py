"""Latency (issue 7 item 2): 1-task and 10-task workflows through the full flow with recording,
median and p95 of sequential runs, against the raw temporalio two-queue baseline on the same server.

Run: ``python -m bench.latency`` (``BENCH_LATENCY_RUNS``, default 100; ``BENCH_LATENCY_MODES``,
default ``durable,in-memory``: the server's state in ``<home>/temporal.db`` as ``start()`` does by
default, and in memory as ``WorkflowEnvironment.start_local`` does). The three kinds of run are
interleaved (baseline, 1-task, 10-task, rotating who goes first) so all see the same machine; each
is timed from the calling thread, the lab's from ``lab.run`` until ``wait`` returns (the terminal
state committed to the history), the baseline's around ``execute_workflow`` handed to the same loop.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench.common import env_int, markdown_table, span, stats, write_result
from bench.workloads import ONE_TASK, TEN_TASKS, baseline_workers, run_baseline
from stigmer_nb.lab import Lab
from stigmer_nb.settings import Settings

RUNS = env_int("BENCH_LATENCY_RUNS", 100)
WARMUP = 5
TARGET_ONE_TASK = 2.5


def measure(lab: Lab, runs: int, warmup: int = WARMUP) -> dict[str, list[float]]:
    """Interleaved sequential samples of the 1-task flow, the 10-task flow and the raw baseline."""
    loop = lab._check()
    stack = AsyncExitStack()
    wf_queue, act_queue = loop.call(stack.enter_async_context(baseline_workers(lab.client)))
    samples: dict[str, list[float]] = {"one_task": [], "ten_tasks": [], "baseline": []}

    def flow(doc: str, i: int) -> float:
        t0 = time.perf_counter()
        execution = lab.run(doc, input={"n": i}).wait(60)
        elapsed = time.perf_counter() - t0
        assert execution.phase == "EXECUTION_COMPLETED", execution.error
        return elapsed

    def baseline(i: int) -> float:
        t0 = time.perf_counter()
        loop.call(run_baseline(lab.client, wf_queue, act_queue, i))
        return time.perf_counter() - t0

    kinds = {
        "baseline": baseline,
        "one_task": lambda i: flow(ONE_TASK, i),
        "ten_tasks": lambda i: flow(TEN_TASKS, i),
    }
    names = list(kinds)
    try:
        for i in range(warmup + runs):
            order = names[i % 3 :] + names[: i % 3]
            for name in order:
                elapsed = kinds[name](i)
                if i >= warmup:
                    samples[name].append(elapsed)
    finally:
        loop.call(stack.aclose())
    return samples


MODES = {
    "durable": {"ui": False},
    "in-memory": {"ui": False, "durable": False},
}
"""Server state on disk (the default) or in memory: each mode its own lab, server and baseline."""


def _run_mode(options: dict[str, Any]) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    # Recording on (the default); headless: the baseline has no UI.
    lab = Lab.create(Settings.from_env({}, home=home, **options))
    try:
        samples = measure(lab, RUNS)
    finally:
        lab.stop()
        shutil.rmtree(home, ignore_errors=True)
    figures = {name: stats(values) for name, values in samples.items()}
    base = figures["baseline"]
    ratios = {
        name: {"median": figures[name]["median"] / base["median"], "p95": figures[name]["p95"] / base["p95"]}
        for name in ("one_task", "ten_tasks")
    }
    return {"latency_s": figures, "ratios": ratios, "samples_s": samples}


def main() -> dict[str, Any]:
    wanted = (os.environ.get("BENCH_LATENCY_MODES") or ",".join(MODES)).split(",")
    results = {mode: _run_mode(MODES[mode]) for mode in wanted}
    write_result(
        "latency",
        {"runs": RUNS, "modes": results, "targets": {"one_task_ratio_median": TARGET_ONE_TASK}},
    )
    labels = {
        "one_task": "1-task, full flow + recording",
        "ten_tasks": "10-task, full flow + recording",
        "baseline": "raw two-queue baseline",
    }
    rows = []
    for mode, result in results.items():
        figures, ratios = result["latency_s"], result["ratios"]
        for name in ("one_task", "ten_tasks", "baseline"):
            row: dict[str, Any] = {
                "server state": mode,
                "workflow": labels[name],
                "median ms (range)": span(figures[name], 1000),
                "p95 ms": figures[name]["p95"] * 1000,
            }
            if name in ratios:
                row["ratio median"] = ratios[name]["median"]
                row["ratio p95"] = ratios[name]["p95"]
                row["target"] = f"median ≤ {TARGET_ONE_TASK}" if name == "one_task" else "(none)"
            rows.append(row)
    print(f"\n{RUNS} sequential runs of each, interleaved; each mode its own embedded server\n")
    columns = [
        "server state",
        "workflow",
        "median ms (range)",
        "p95 ms",
        "ratio median",
        "ratio p95",
        "target",
    ]
    print(markdown_table(rows, columns))
    return results


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # temporalio's bridge may abort at interpreter shutdown (sdk-python#300)
