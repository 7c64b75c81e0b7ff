"""Throughput: N concurrent 10-task executions with full recording, with recording off, and the raw
two-queue baseline, on one embedded server in one run; plus the CPU split server / Python.

Run: ``python -m bench.throughput`` (BENCH_SIZES=200,1000 by default). Each size runs
``BENCH_THROUGHPUT_ROUNDS`` rounds (default 2), the modes in alternating order so none always
meets the fuller server; figures are medians over the rounds, ratios are of the medians.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import env_int, markdown_table, span, stats, write_result
from bench.workloads import TEN_TASKS, baseline_workers, cpu_seconds, run_baseline_concurrent
from stigmer_nb.lab import Lab
from stigmer_nb.settings import Settings

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "200,1000").split(",")]
ROUNDS = env_int("BENCH_THROUGHPUT_ROUNDS", 2)
MODES = ("full recording", "recording off", "raw two-queue baseline")


def _lab_run(lab: Lab, n: int, server_pid: int) -> dict[str, float]:
    cpu_server, cpu_python = cpu_seconds(server_pid), cpu_seconds()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        executions = list(pool.map(lambda i: lab.run(TEN_TASKS, input={"n": i}), range(n)))
    submitted = time.perf_counter() - t0
    for execution in executions:
        execution.wait(1200)
    wall = time.perf_counter() - t0
    bad = [e.id for e in executions if e.phase != "EXECUTION_COMPLETED"]
    assert not bad, bad[:3]
    return {
        "wall_s": wall,
        "submit_s": submitted,
        "per_s": n / wall,
        "cpu_server_s": cpu_seconds(server_pid) - cpu_server,
        "cpu_python_s": cpu_seconds() - cpu_python,
    }


def main() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    recording = Lab.create(Settings.from_env({}, home=home / "on", durable=False, ui=False))
    assert recording.server is not None
    server = recording.server
    off = Lab.create(
        Settings.from_env(
            {
                "TEMPORAL_WORKFLOW_EXECUTION_STIGMER_TASK_QUEUE": "off-stigmer",
                "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE": "off-runner",
                "TEMPORAL_ZIGFLOW_EXECUTION_TASK_QUEUE": "off-zigflow",
            },
            home=home / "off",
            temporal_host_port=server.target,
            recording=False,
        )
    )
    rows, results = [], {}
    try:
        for lab in (recording, off):  # warm up both
            for execution in [lab.run(TEN_TASKS, input={"n": 0}) for _ in range(20)]:
                execution.wait(120)
        for n in SIZES:

            async def baseline(n: int = n) -> dict[str, float]:
                async with baseline_workers(recording.client) as (wq, aq):
                    await run_baseline_concurrent(recording.client, wq, aq, 20)
                    cpu_server, cpu_python = cpu_seconds(server.pid), cpu_seconds()
                    wall = await run_baseline_concurrent(recording.client, wq, aq, n)
                    return {"wall_s": wall, "per_s": n / wall, "cpu_server_s": cpu_seconds(server.pid) - cpu_server,
                            "cpu_python_s": cpu_seconds() - cpu_python}  # fmt: skip

            run = {
                "full recording": lambda n=n: _lab_run(recording, n, server.pid),
                "recording off": lambda n=n: _lab_run(off, n, server.pid),
                "raw two-queue baseline": lambda: recording._check().call(baseline()),
            }
            samples: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
            for r in range(ROUNDS):
                for mode in MODES if r % 2 == 0 else reversed(MODES):
                    samples[mode].append(run[mode]())
            summary = {
                mode: {key: stats([x[key] for x in xs]) for key in xs[0]} for mode, xs in samples.items()
            }
            results[n] = {"rounds": samples, "summary": summary}
            for mode in MODES:
                m = summary[mode]
                rows.append({"concurrent": n, "mode": mode, "runs/s, median (range)": span(m["per_s"]),
                             "wall (s)": m["wall_s"]["median"], "CPU server (s)": m["cpu_server_s"]["median"],
                             "CPU python (s)": m["cpu_python_s"]["median"]})  # fmt: skip
            per_s = {mode: summary[mode]["per_s"]["median"] for mode in MODES}
            results[n]["ratios"] = {
                "recording_vs_off": per_s["full recording"] / per_s["recording off"],
                "recording_vs_raw": per_s["full recording"] / per_s["raw two-queue baseline"],
            }
            rows.append({"concurrent": n, "mode": "ratio recording/off (target ≥ 0.9)",
                         "runs/s, median (range)": results[n]["ratios"]["recording_vs_off"]})  # fmt: skip
            rows.append({"concurrent": n, "mode": "ratio recording/raw (target ≥ 0.4)",
                         "runs/s, median (range)": results[n]["ratios"]["recording_vs_raw"]})  # fmt: skip
    finally:
        off.stop()
        recording.stop()
    write_result(
        "throughput",
        {"rounds": ROUNDS, "sizes": results, "targets": {"recording_vs_off": 0.9, "recording_vs_raw": 0.4}},
    )
    print(f"\n{ROUNDS} rounds per size, modes in alternating order; medians\n")
    columns = ["concurrent", "mode", "runs/s, median (range)", "wall (s)", "CPU server (s)", "CPU python (s)"]
    print(markdown_table(rows, columns))
    return results


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
