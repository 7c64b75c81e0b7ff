"""Waiting executions: what N executions parked in a ``wait`` cost the server and the lab.

Run: ``python -m bench.waiting``.

Each waiting execution holds an ``ExecuteWorkflow`` attempt that heartbeats, and every heartbeat is
a history write on the embedded server. Measured: CPU seconds of the server process and of the lab
process over a window (``BENCH_WAITING_SECONDS``, default 20) with ``BENCH_WAITING`` executions
(default ``100,500``) waiting, against the same lab with none waiting, in the same run.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import env_int, markdown_table, write_result
from bench.workloads import cpu_seconds
from stigmer_nb.lab import Lab
from stigmer_nb.settings import Settings

WINDOW = env_int("BENCH_WAITING_SECONDS", 20)
COUNTS = [int(x) for x in (os.environ.get("BENCH_WAITING") or "100,500").split(",")]
WAITS = """
document: {dsl: '1.0.0', namespace: bench, name: waits, version: '1.0.0'}
do:
  - nap:
      wait: {minutes: 10}
"""


def _window(lab: Lab) -> tuple[float, float]:
    """CPU seconds (server, lab) over one window."""
    assert lab.server is not None
    server, own = cpu_seconds(lab.server.pid), cpu_seconds()
    time.sleep(WINDOW)
    return cpu_seconds(lab.server.pid) - server, cpu_seconds() - own


def measure(lab: Lab, n: int) -> dict[str, Any]:
    executions = [lab.run(WAITS) for _ in range(n)]
    deadline = time.monotonic() + 120
    while sum(e.phase == "EXECUTION_IN_PROGRESS" for e in executions) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # the starts' own work settles
    server, own = _window(lab)
    for execution in executions:
        execution.cancel()
    for execution in executions:
        execution.wait(120)
    return {"waiting": n, "server_cpu_s": server, "lab_cpu_s": own}


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab.create(Settings.from_env({}, home=Path(tmp) / "lab", durable=False, ui=False))
        try:
            lab.run(WAITS.replace("minutes: 10", "seconds: 0")).wait(60)  # warm-up
            server, own = _window(lab)
            rows = [{"waiting": 0, "server_cpu_s": server, "lab_cpu_s": own}]
            rows += [measure(lab, n) for n in COUNTS]
        finally:
            lab.stop()
    idle = rows[0]
    for row in rows:
        row["server_core_share"] = row["server_cpu_s"] / WINDOW
        row["server_ms_per_waiting_s"] = (
            (row["server_cpu_s"] - idle["server_cpu_s"]) / WINDOW / row["waiting"] * 1000
            if row["waiting"]
            else 0.0
        )
    write_result("waiting", {"window_s": WINDOW, "rows": rows})
    print(f"CPU over a {WINDOW} s window while executions wait (baseline: the same lab, none waiting)\n")
    print(
        markdown_table(
            rows,
            ["waiting", "server_cpu_s", "server_core_share", "server_ms_per_waiting_s", "lab_cpu_s"],
        )
    )
    return {"rows": rows}


if __name__ == "__main__":
    main()
