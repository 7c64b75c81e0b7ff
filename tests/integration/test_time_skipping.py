"""Time skipping: hour-long waits through the whole flow in about a second of wall time."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from stigmer_nb.errors import ExecutionTimeoutError

pytestmark = pytest.mark.integration

HOUR = """
document: {dsl: '1.0.0', namespace: skip, name: wait-an-hour, version: '1.0.0'}
do:
  - before:
      set: {stage: waiting}
  - nap:
      wait: PT1H
  - after:
      set: {stage: done}
"""

RETRIES = """
document: {dsl: '1.0.0', namespace: skip, name: patient-retries, version: '1.0.0'}
do:
  - flaky:
      try:
        - count:
            set: {n: '${ ($context.n // 0) + 1 }'}
            export: {as: '$context + {n: .n}'}
        - fail:
            if: .n < 4
            raise:
              error: {type: https://serverlessworkflow.io/spec/1.0.0/errors/communication, status: 503, title: Down}
      catch:
        retry:
          delay: {minutes: 10}
          backoff: {exponential: {}}
          limit: {attempt: {count: 5}}
  - report:
      set: {attempts: '${ $context.n }'}
"""


def test_an_hour_passes_in_seconds_and_shows_in_workflow_time(lab_factory: Any) -> None:
    lab = lab_factory(time_skipping=True)
    started = time.monotonic()
    execution = lab.run(HOUR).wait(30)
    wall = time.monotonic() - started
    assert execution.phase == "EXECUTION_COMPLETED" and execution.output == {"stage": "done"}
    assert wall < 10
    record = execution.record
    assert (record.completed_at - record.started_at).total_seconds() >= 3600
    nap = execution.tasks.set_index("name").loc["nap"]
    assert nap["duration_ms"] >= 3_600_000
    # The history says which clock: workflow time ran an hour ahead of the wall-clock commit times.
    assert record.time_skipping
    row = lab.sql("SELECT time_skipping FROM workflow_executions WHERE id = ?", [execution.id])
    assert bool(row["time_skipping"][0])
    lag = lab.sql(
        "SELECT max(date_diff('second', recorded_at, occurred_at)) AS ahead FROM task_updates WHERE execution_id = ?",
        [execution.id],
    )
    assert lag["ahead"][0] >= 3590  # occurred_at (workflow clock) is an hour past recorded_at (wall)
    from stigmer_nb.widgets.render import render_execution

    assert "workflow time" in render_execution(lab.service.snapshot(execution.id), record.completed_at).status
    print(f"PT1H wait: {wall:.2f}s of wall time, {nap['duration_ms'] / 1000:.0f}s of workflow time")


def test_retry_backoff_skips_too(lab_factory: Any) -> None:
    lab = lab_factory(time_skipping=True)
    started = time.monotonic()
    execution = lab.run(RETRIES).wait(30)
    assert execution.phase == "EXECUTION_COMPLETED", execution.error
    assert execution.output == {"attempts": 4}
    assert time.monotonic() - started < 10  # 20 + 40 + 80 minutes of backoff


def test_normal_mode_still_waits(lab: Any) -> None:
    execution = lab.run(HOUR)
    with pytest.raises(ExecutionTimeoutError):
        execution.wait(3)
    assert execution.phase == "EXECUTION_IN_PROGRESS"
    assert not execution.record.time_skipping
    execution.cancel().wait(30)


def test_cli_time_skipping(cli: list[str], tmp_path: Path) -> None:
    path = tmp_path / "hour.yaml"
    path.write_text(HOUR)
    started = time.monotonic()
    proc = subprocess.run([*cli, "run", str(path), "--time-skipping", "--json", "--home", str(tmp_path / "h")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == {"stage": "done"}
    assert time.monotonic() - started < 15
