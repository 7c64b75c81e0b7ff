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


SUB = """
document: {dsl: '1.0.0', namespace: tests, name: remote-sub, version: '1.0.0'}
do:
  - double:
      set: {n: '${ .n * 2 }'}
  - later:
      wait: {milliseconds: 50}
"""

PARENT = """
document: {dsl: '1.0.0', namespace: tests, name: remote-parent, version: '1.0.0'}
do:
  - before:
      set: {n: '${ .n }'}
  - delegate:
      run:
        workflow: {namespace: tests, name: remote-sub, input: '${ . }'}
  - after:
      set: {result: '${ .n + 1 }'}
"""


def test_run_workflow_is_a_child_the_remote_runner_runs_with_its_tasks_under_the_parent_task(
    remote_lab: tuple[Lab, Any],
) -> None:
    from stigmer_nb.temporal.names import DSL_WORKFLOW

    lab, _ = remote_lab
    lab._check().call(lab.service.apply_workflow(lab.prepare(SUB)[0]))  # in the catalog, not run
    execution = lab.run(PARENT, input={"n": 5}).wait(60)
    assert execution.phase == "EXECUTION_COMPLETED", execution.error
    assert execution.output == {"result": 11}
    tasks = execution.tasks.set_index("name")
    delegate = tasks.loc["delegate"]
    for name in ("double", "later"):
        assert tasks.loc[name, "parent_id"] == delegate["task_id"]
        assert tasks.loc[name, "reference"].startswith("/do/1/delegate/run/workflow/do/")
        assert tasks.loc[name, "status"] == "WORKFLOW_TASK_COMPLETED"
    seqs = list(execution.updates["seq"])
    # One sequence across parent and child, without a gap (seq 1 is the phase change).
    assert seqs == list(range(2, len(seqs) + 2))
    # The sub-workflow is a Temporal child workflow of the DSL run.
    run_id = execution.record.runner_workflow_id

    async def children() -> list[str]:
        query = f"WorkflowType = '{DSL_WORKFLOW}' AND ParentWorkflowId = '{run_id}'"
        return [wf.id async for wf in lab.client.list_workflows(query)]

    found = lab._check().call(children())
    assert found == [f"{run_id}/{delegate['task_id']}"]


STEERED = """
document: {dsl: '1.0.0', namespace: tests, name: remote-steered, version: '1.0.0'}
do:
  - first: {set: {n: '${ .n }'}}
  - nap: {wait: {milliseconds: 300}}
  - review:
      listen: {to: {one: {with: {type: ai.stigmer.approval}}}}
      output: {as: '${ {n: $context.n, approved: .[0].approved} }'}
      export: {as: '${ $context }'}
  - check: {set: {n: '${ if .approved then .n / .divisor else 0 end }', divisor: '${ .divisor }'}}
"""


def test_pause_approve_terminate_and_recover_reach_a_remote_runner(remote_lab: tuple[Lab, Any]) -> None:
    lab, _ = remote_lab
    doc = STEERED.replace(
        "- first: {set: {n: '${ .n }'}}", "- first: {set: {n: '${ .n }'}, export: {as: '${ {n: .n} }'}}"
    )
    execution = lab.run(doc, input={"n": 8})
    execution.wait(30, until="in_progress")
    execution.pause()
    execution.wait(30, until="paused")
    assert "review" not in set(execution.tasks["name"])
    execution.resume()
    execution.wait(30, until="approval")
    assert list(lab.pending_approvals()["execution_id"]) == [execution.id]
    execution.approve("go")
    execution.wait(60)
    # .divisor is null: jq's division by null fails the last task, after the approval.
    assert execution.phase == "EXECUTION_FAILED"
    assert execution.record.checkpoint["task"] == "check"
    fixed = doc.replace("'${ .divisor }'", "2").replace(".n / .divisor", ".n / 2")
    recovered = execution.recover(document=fixed).wait(60)
    assert recovered.phase == "EXECUTION_COMPLETED", recovered.error
    assert recovered.output == {"n": 4, "divisor": 2}
    assert list(recovered.tasks["name"]) == ["check"]
    stopped = lab.run(doc, input={"n": 1})
    stopped.wait(30, until="approval")
    stopped.terminate("not needed")
    assert stopped.wait(30).phase == "EXECUTION_TERMINATED"
    assert stopped.tasks.set_index("name").loc["review", "status"] == "WORKFLOW_TASK_FAILED"
