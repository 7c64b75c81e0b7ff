"""The whole Stigmer flow on the real embedded server: invoke → ExecuteWorkflow → DSL workflow."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from temporalio.client import WorkflowExecutionStatus

from stigmer_nb.lab import Lab

from ..conftest import assert_eventually

pytestmark = pytest.mark.integration

THREE_SETS = """
document: {dsl: '1.0.0', namespace: tests, name: three-sets, version: '1.0.0'}
do:
  - first:
      set: {a: 1}
  - second:
      set: {a: '${ .a }', b: '${ .a + 1 }'}
  - third:
      set: {sum: '${ .a + .b }', from_input: '${ $workflow.input.n }'}
"""

RAISES = """
document: {dsl: '1.0.0', namespace: tests, name: raises, version: '1.0.0'}
do:
  - prepare:
      set: {n: 3}
  - fail:
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
          status: 400
          title: Not enough
          detail: '${ "only " + (.n | tostring) }'
"""


def test_three_set_tasks_complete_with_every_transition_recorded(lab: Lab) -> None:
    execution = lab.run(THREE_SETS, input={"n": 7}).wait(30)
    assert execution.phase == "EXECUTION_COMPLETED"
    assert execution.output == {"sum": 3, "from_input": 7}
    record = execution.record
    assert record.started_at is not None and record.completed_at is not None
    assert record.created_at <= record.started_at <= record.completed_at
    tasks = execution.tasks
    assert list(tasks["name"]) == ["first", "second", "third"]
    assert list(tasks["reference"]) == ["/do/0/first", "/do/1/second", "/do/2/third"]
    assert set(tasks["status"]) == {"WORKFLOW_TASK_COMPLETED"}
    assert tasks["started_at"].notna().all() and tasks["completed_at"].notna().all()
    assert tasks["output"].iloc[-1] == {"sum": 3, "from_input": 7}
    updates = execution.updates
    assert len(updates) == 6  # IN_PROGRESS + COMPLETED per task: one row per transition
    assert list(updates["seq"]) == sorted(updates["seq"])
    assert updates.groupby("task_id").size().tolist() == [2, 2, 2]
    history = lab.history()
    assert history.loc[history["id"] == execution.id, "phase"].item() == "EXECUTION_COMPLETED"


def test_raise_fails_with_problem_details(lab: Lab) -> None:
    execution = lab.run(RAISES).wait(30)
    assert execution.phase == "EXECUTION_FAILED"
    assert execution.error == {
        "type": "https://serverlessworkflow.io/spec/1.0.0/errors/validation",
        "status": 400,
        "title": "Not enough",
        "detail": "only 3",
        "instance": "/do/1/fail",
    }
    failed = execution.tasks.set_index("name").loc["fail"]
    assert failed["status"] == "WORKFLOW_TASK_FAILED" and failed["error"]["instance"] == "/do/1/fail"


def test_temporal_ids_queues_and_memo_are_stigmers(lab: Lab) -> None:
    execution = lab.run(THREE_SETS, input={"n": 1}).wait(30)

    async def describe():  # type: ignore[no-untyped-def]
        invoke = lab.client.get_workflow_handle(f"stigmer/workflow-execution/invoke/{execution.id}")
        dsl = lab.client.get_workflow_handle(f"workflow-exec-{execution.id}")
        return await invoke.describe(), await dsl.describe()

    # The history records the end before the invoke workflow itself completes: poll for it.
    invoke, dsl = assert_eventually(
        lambda: (d := lab._check().call(describe()))[0].status == WorkflowExecutionStatus.COMPLETED and d
    )
    assert invoke.workflow_type == "stigmer/workflow-execution/invoke"
    assert invoke.task_queue == lab.settings.stigmer_queue
    assert lab._check().call(invoke.memo()) == {"activityTaskQueue": lab.settings.runner_queue}
    assert invoke.raw_description.execution_config.workflow_run_timeout.seconds == 30 * 60
    assert dsl.workflow_type == "ExecuteServerlessWorkflow"
    assert dsl.task_queue == lab.settings.zigflow_queue
    assert execution.record.temporal_workflow_id == invoke.id
    assert execution.record.runner_workflow_id == dsl.id


def test_a_blocked_thread_does_not_stall_executions(lab: Lab) -> None:
    doc = THREE_SETS.replace(
        "- first:\n      set: {a: 1}",
        "- first:\n      wait: {milliseconds: 300}\n  - pad:\n      set: {a: 1}",
    )
    execution = lab.run(doc, input={"n": 2})
    time.sleep(3)  # the notebook's thread is busy; the lab's thread is not
    assert execution.phase == "EXECUTION_COMPLETED"
    record = execution.record
    assert (record.completed_at - record.started_at).total_seconds() < 2.5


def test_a_second_process_on_the_same_history_gets_a_clear_error(lab: Lab) -> None:
    code = (
        "from stigmer_nb.lab import Lab\nfrom stigmer_nb.settings import Settings\n"
        f"Lab.create(Settings.from_env({{}}, home={str(lab.settings.home)!r}, "
        f"temporal_host_port={lab.settings.temporal_host_port!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "HistoryLockedError" in proc.stderr
    assert str(lab.settings.history_path) in proc.stderr


def test_many_executions_at_once_all_complete(lab: Lab) -> None:
    executions = [lab.run(THREE_SETS, input={"n": i}) for i in range(20)]
    for i, execution in enumerate(executions):
        assert execution.wait(60).output == {"sum": 3, "from_input": i}
    assert lab.sql("SELECT count(*) AS n FROM task_updates")["n"][0] == 20 * 6
