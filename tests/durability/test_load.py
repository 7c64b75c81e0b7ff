"""Load: 1,000 executions of a 10-task workflow submitted at once all complete, nothing lost."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

import stigmer_nb
from stigmer_nb.lab import Execution, Lab

pytestmark = pytest.mark.integration

TEN_TASKS = "document: {dsl: '1.0.0', namespace: load, name: ten-tasks, version: '1.0.0'}\ndo:\n" + "".join(
    f"  - step{i}:\n      set: {{n: '${{ .n + 1 }}'}}\n" for i in range(10)
)
RUNS = 1000


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_a_thousand_executions_at_once(tmp_path: Path) -> None:
    lab = stigmer_nb.start(home=tmp_path, durable=True, ui=False)
    try:
        started = time.monotonic()
        # Submitted from 8 threads at once, as a notebook user with a pool would.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            executions: list[Execution] = list(
                pool.map(lambda i: lab.run(TEN_TASKS, input={"n": i}), range(RUNS))
            )
        submitted = time.monotonic() - started
        for execution in executions:
            execution.wait(600)
        elapsed = time.monotonic() - started
        phases = lab.sql("SELECT phase, count(*) AS n FROM workflow_executions GROUP BY phase")
        assert dict(zip(phases["phase"], phases["n"], strict=True)) == {"EXECUTION_COMPLETED": RUNS}
        rows = lab.sql("SELECT count(*) AS n, count(DISTINCT execution_id) AS e FROM task_updates")
        assert (rows["n"][0], rows["e"][0]) == (RUNS * 20, RUNS)  # 10 tasks x 2 transitions, no more, no less
        outputs = lab.sql(
            "SELECT count(*) AS bad FROM workflow_executions WHERE output->>'n' != (input->>'n')::INT + 10"
        )
        assert outputs["bad"][0] == 0
        lab_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        server_rss = _peak_rss_mb(lab.server.pid)
        print(
            f"\n{RUNS} x 10-task executions: submitted in {submitted:.1f}s, all done in {elapsed:.1f}s "
            f"({RUNS / elapsed:.0f}/s); peak RSS lab {lab_rss:.0f} MB, server {server_rss:.0f} MB"
        )
        assert lab_rss < 2048 and server_rss < 2048
    finally:
        lab.stop()


LONG_WAIT = """
document: {dsl: '1.0.0', namespace: load, name: long-wait, version: '1.0.0'}
do:
  - nap:
      wait: {minutes: 10}
"""


def test_more_than_a_hundred_waiting_executions_all_start(lab: Lab) -> None:
    # ExecuteWorkflow holds a worker slot for its whole run: with the SDK's default of 100 slots
    # the 101st waiting execution would never start until another one finished.
    from concurrent.futures import ThreadPoolExecutor

    runs = 120
    with ThreadPoolExecutor(8) as pool:
        executions = list(pool.map(lambda i: lab.run(LONG_WAIT, input={"i": i}), range(runs)))
    ids = [e.id for e in executions]
    deadline = time.monotonic() + 60
    waiting = 0
    while time.monotonic() < deadline:
        waiting = lab.store.rows(
            "SELECT count(DISTINCT execution_id) FROM task_updates WHERE name = 'nap' "
            "AND status = 'WORKFLOW_TASK_IN_PROGRESS' AND execution_id IN (SELECT unnest(?::VARCHAR[]))",
            [ids],
        )[0][0]
        if waiting == runs:
            break
        time.sleep(0.5)
    try:
        assert waiting == runs, f"only {waiting} of {runs} executions reached their wait"
    finally:
        for execution in executions:
            execution.cancel()
        for execution in executions:
            assert execution.wait(120).phase == "EXECUTION_CANCELLED"
