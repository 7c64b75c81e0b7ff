"""Cancel: from ``Execution.cancel()`` to the execution recorded CANCELLED.

Run: ``python -m bench.cancel``.

Two moments: right after ``lab.run`` returns (the runner may not have started the DSL run yet,
or has just started it) and mid-run (the execution IN_PROGRESS, parked in a ``wait``). Each is
timed from the ``cancel()`` call until ``wait()`` returns, ``BENCH_CANCEL_RUNS`` times (default
20). The baseline, in the same lab and run: a 1-task execution from ``lab.run`` to COMPLETED, the
shortest round trip through both workers and the history.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import env_int, markdown_table, stats, write_result
from bench.workloads import ONE_TASK
from stigmer_nb.lab import Execution, Lab
from stigmer_nb.settings import Settings

RUNS = env_int("BENCH_CANCEL_RUNS", 20)
PARKED = """
document: {dsl: '1.0.0', namespace: bench, name: parked, version: '1.0.0'}
do:
  - first:
      set: {n: 1}
  - nap:
      wait: {minutes: 10}
"""


def _cancel_seconds(execution: Execution) -> float:
    t0 = time.perf_counter()
    execution.cancel()
    execution.wait(60)
    elapsed = time.perf_counter() - t0
    assert execution.phase == "EXECUTION_CANCELLED", execution.phase
    return elapsed


def _in_progress(execution: Execution) -> Execution:
    deadline = time.monotonic() + 30
    while execution.phase != "EXECUTION_IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # parked in the wait, its first transitions recorded
    return execution


def _one_task_seconds(lab: Lab) -> float:
    t0 = time.perf_counter()
    lab.run(ONE_TASK, input={"n": 1}).wait(60)
    return time.perf_counter() - t0


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab.create(Settings.from_env({}, home=Path(tmp) / "lab", durable=False, ui=False))
        try:
            for _ in range(5):  # warm-up
                _one_task_seconds(lab)
            baseline = stats([_one_task_seconds(lab) for _ in range(RUNS)])
            right_after = stats([_cancel_seconds(lab.run(PARKED)) for _ in range(RUNS)])
            mid_run = stats([_cancel_seconds(_in_progress(lab.run(PARKED))) for _ in range(RUNS)])
        finally:
            lab.stop()
    rows = [
        {"measure": label, "median ms": s["median"] * 1000, "p95 ms": s["p95"] * 1000,
         "max ms": s["max"] * 1000, "vs 1-task run (median)": s["median"] / baseline["median"]}
        for label, s in (
            ("cancel right after lab.run", right_after),
            ("cancel mid-run (parked in a wait)", mid_run),
            ("baseline: 1-task run, lab.run to COMPLETED", baseline),
        )
    ]  # fmt: skip
    write_result(
        "cancel", {"runs": RUNS, "right_after": right_after, "mid_run": mid_run, "baseline": baseline}
    )
    print(f"cancel() until wait() returns CANCELLED, {RUNS} runs each\n")
    print(markdown_table(rows, list(rows[0])))
    return {"right_after": right_after, "mid_run": mid_run, "baseline": baseline}


if __name__ == "__main__":
    main()
