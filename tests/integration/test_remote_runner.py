"""The runner side in its own OS process: context in and progress out both travel through Temporal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from stigmer_nb.lab import Lab

from ..conftest import queue_env

pytestmark = pytest.mark.integration

DOC = """
document: {dsl: '1.0.0', namespace: tests, name: remote, version: '1.0.0'}
do:
  - start:
      set: {n: '${ .n }'}
  - pause:
      wait: {milliseconds: 200}
  - finish:
      set: {doubled: '${ .n * 2 }', secret_seen: '${ $secrets.TOKEN | length }'}
"""


def start_runner(lab: Lab) -> subprocess.Popen[str]:
    settings = lab.settings
    env = {
        **os.environ,
        "TEMPORAL_WORKFLOW_EXECUTION_STIGMER_TASK_QUEUE": settings.stigmer_queue,
        "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE": settings.runner_queue,
        "TEMPORAL_ZIGFLOW_EXECUTION_TASK_QUEUE": settings.zigflow_queue,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "stigmer_nb", "worker", "runner", "--temporal", str(settings.temporal_host_port),
         "--home", str(settings.home)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "polling" in line, line
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def remote_lab(lab_factory: Any) -> Iterator[tuple[Lab, subprocess.Popen[str]]]:
    lab = lab_factory(local_runner=False)
    proc = start_runner(lab)
    yield lab, proc
    stop(proc)


def test_progress_from_another_process_lands_in_the_labs_history(remote_lab: tuple[Lab, Any]) -> None:
    lab, _ = remote_lab
    execution = lab.run(DOC, input={"n": 21}, runtime_env={"TOKEN": {"value": "abc123", "is_secret": True}})
    execution.wait(60)
    assert execution.phase == "EXECUTION_COMPLETED", execution.error
    assert execution.output == {"doubled": 42, "secret_seen": 6}
    tasks = execution.tasks
    assert list(tasks["name"]) == ["start", "pause", "finish"]
    assert set(tasks["status"]) == {"WORKFLOW_TASK_COMPLETED"}
    assert len(execution.updates) == 6
    pause = tasks.set_index("name").loc["pause"]
    assert pause["duration_ms"] >= 200


def test_the_lab_alone_does_not_execute(lab_factory: Any) -> None:
    lab = lab_factory(local_runner=False)
    execution = lab.run(DOC, input={"n": 1})
    with pytest.raises(TimeoutError):
        execution.wait(1.5)
    assert execution.phase == "EXECUTION_PENDING"  # nobody polls the runner queue yet
    proc = start_runner(lab)
    try:
        assert execution.wait(60).phase == "EXECUTION_COMPLETED"
    finally:
        stop(proc)


def test_queue_env_helper_names_distinct_queues() -> None:
    env = queue_env("x")
    assert len(set(env.values())) == 3
