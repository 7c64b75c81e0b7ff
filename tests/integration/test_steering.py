"""Steering executions through the real server: pause, resume, terminate, events, approvals."""

from __future__ import annotations

import time
from typing import Any

import pytest

from stigmer_nb.errors import ExecutionStateError, InvalidInputError
from stigmer_nb.lab import Lab

from ..conftest import assert_eventually

pytestmark = pytest.mark.integration

STEPS = """
document: {dsl: '1.0.0', namespace: tests, name: steps, version: '1.0.0'}
do:
  - first: {set: {x: 1}}
  - nap: {wait: {milliseconds: 1500}}
  - second: {set: {x: 2}}
  - third: {set: {x: 3}}
"""

APPROVAL = """
document: {dsl: '1.0.0', namespace: tests, name: approval, version: '1.0.0'}
do:
  - prepare: {set: {amount: '${ .amount }'}}
  - review:
      listen: {to: {one: {with: {type: ai.stigmer.approval}}}}
      metadata: {prompt: '${ "Refund \\(.amount) EUR?" }'}
      output: {as: '${ .[0] }'}
  - decide:
      switch:
        - yes: {when: '${ .approved }', then: refund}
        - no: {then: exit}
  - refund: {set: {refunded: true, note: '${ .comment }'}}
"""


def kinds(execution: Any) -> list[str]:
    return list(execution.events["kind"])


def test_pause_stops_between_tasks_and_resume_goes_on(lab: Lab) -> None:
    execution = lab.run(STEPS)
    execution.wait(10, until="in_progress")
    assert_eventually(lambda: "nap" in set(execution.tasks["name"]))
    asked = time.monotonic()
    execution.pause("look first")
    execution.wait(10, until="paused")
    # The wait already under way kept its deadline; nothing after it started.
    tasks = execution.tasks.set_index("name")
    assert list(tasks.index) == ["first", "nap"]
    assert tasks.loc["nap", "status"] == "WORKFLOW_TASK_COMPLETED"
    assert tasks.loc["nap", "duration_ms"] < 3000
    time.sleep(0.5)
    assert execution.phase == "EXECUTION_PAUSED"
    assert list(execution.tasks["name"]) == ["first", "nap"]
    execution.resume()
    assert execution.wait(20).phase == "EXECUTION_COMPLETED"
    assert execution.output == {"x": 3}
    assert time.monotonic() - asked >= 0.5
    log = kinds(execution)
    assert log == ["started", "pause_requested", "paused", "resume_requested", "resumed", "completed"]
    assert execution.events.iloc[1]["detail"] == {"reason": "look first"}
    assert lab.sql("SELECT count(*) AS n FROM execution_events WHERE kind = 'paused'")["n"][0] == 1


def test_a_pause_reaches_every_parallel_branch_once(lab: Lab) -> None:
    doc = """
document: {dsl: '1.0.0', namespace: tests, name: forked, version: '1.0.0'}
do:
  - both:
      fork:
        branches:
          - left:
              do:
                - l1: {wait: {milliseconds: 400}}
                - l2: {set: {side: left}}
          - right:
              do:
                - r1: {wait: {milliseconds: 600}}
                - r2: {set: {side: right}}
"""
    execution = lab.run(doc)
    execution.wait(10, until="in_progress")
    execution.pause()
    execution.wait(10, until="paused")
    assert_eventually(lambda: {"l1", "r1"} <= set(execution.tasks["name"]))
    time.sleep(0.8)  # both timers have fired; neither branch went on
    assert not {"l2", "r2"} & set(execution.tasks["name"])
    execution.resume()
    assert execution.wait(20).phase == "EXECUTION_COMPLETED"
    assert kinds(execution).count("paused") == 1
    assert kinds(execution).count("resumed") == 1


def test_terminate_stops_at_once_and_marks_open_tasks(lab: Lab) -> None:
    execution = lab.run(STEPS)
    assert_eventually(lambda: "nap" in set(execution.tasks["name"]))
    execution.terminate("wrong input")
    assert execution.wait(20).phase == "EXECUTION_TERMINATED"
    assert execution.error["title"] == "Terminated"
    assert "wrong input" in execution.error["detail"]
    nap = execution.tasks.set_index("name").loc["nap"]
    assert nap["status"] == "WORKFLOW_TASK_FAILED"
    assert "wrong input" in nap["error"]["detail"]
    assert kinds(execution)[-1] == "terminated"
    execution.terminate()  # nothing to do once it has ended
    with pytest.raises(ExecutionStateError, match="it has ended"):
        execution.pause()


def test_terminate_a_run_that_never_started(lab_factory: Any) -> None:
    lab = lab_factory(local_runner=False)  # nobody polls the runner queue
    execution = lab.run(STEPS)
    execution.terminate("changed my mind")
    assert execution.phase == "EXECUTION_TERMINATED"
    invoke = lab._check().call(
        lab.client.get_workflow_handle(execution.record.temporal_workflow_id).describe()
    )
    assert invoke.status.name == "TERMINATED"


def test_approve_with_a_comment(lab: Lab) -> None:
    execution = lab.run(APPROVAL, input={"amount": 30})
    execution.wait(20, until="approval")
    assert_eventually(lambda: len(lab.pending_approvals().query(f"execution_id == '{execution.id}'")) == 1)
    pending = lab.pending_approvals().query(f"execution_id == '{execution.id}'")
    row = pending.iloc[0]
    assert (row["task_name"], row["prompt"], row["input"]) == ("review", "Refund 30 EUR?", {"amount": 30})
    execution.approve("ok by me", by="ana")
    assert execution.wait(20).phase == "EXECUTION_COMPLETED"
    assert execution.output == {"refunded": True, "note": "ok by me"}
    given = execution.events.query("kind == 'approval_given'").iloc[0]["detail"]
    assert given == {"task_id": row["task_id"], "approved": True, "comment": "ok by me", "by": "ana"}
    assert execution.id not in set(lab.pending_approvals()["execution_id"])
    assert execution.tasks.set_index("name").loc["review", "kind"] == "listen:approval"


def test_reject_and_the_wrong_states(lab: Lab) -> None:
    execution = lab.run(APPROVAL, input={"amount": 5})
    other = lab.run(STEPS).wait(20, until="in_progress")
    with pytest.raises(ExecutionStateError, match="not waiting for an approval"):
        other.approve()
    other.terminate()
    execution.wait(20, until="approval")
    execution.reject("too much")
    assert execution.wait(20).phase == "EXECUTION_COMPLETED"
    assert execution.output == {"approved": False, "comment": "too much", "by": execution.output["by"]}
    with pytest.raises(ExecutionStateError, match="it has ended"):
        execution.approve()
    with pytest.raises(InvalidInputError, match=r"execution\.approve"):
        lab.send_event({"type": "ai.stigmer.approval", "data": {"approved": True}})


def test_two_approvals_side_by_side_each_take_their_own(lab: Lab) -> None:
    doc = """
document: {dsl: '1.0.0', namespace: tests, name: two-approvals, version: '1.0.0'}
do:
  - both:
      fork:
        branches:
          - legal:
              listen: {to: {one: {with: {type: ai.stigmer.approval}}}}
              output: {as: '${ .[0].approved }'}
          - finance:
              listen: {to: {one: {with: {type: ai.stigmer.approval}}}}
              output: {as: '${ .[0].approved }'}
"""
    execution = lab.run(doc)
    assert_eventually(
        lambda: len(lab.pending_approvals().query(f"execution_id == '{execution.id}'")) == 2, timeout=20
    )
    with pytest.raises(InvalidInputError, match="waits for 2 approvals"):
        execution.approve()
    execution.reject(task="finance")
    execution.approve(task="legal")
    assert execution.wait(20).phase == "EXECUTION_COMPLETED"
    assert execution.output == [True, False]


def test_send_event_reaches_one_execution_only(lab: Lab) -> None:
    doc = """
document: {dsl: '1.0.0', namespace: tests, name: listener, version: '1.0.0'}
do:
  - hear:
      listen: {to: {one: {with: {type: order.paid}}}}
"""
    a, b = lab.run(doc), lab.run(doc)
    assert_eventually(lambda: {a.phase, b.phase} == {"EXECUTION_IN_PROGRESS"})
    assert_eventually(lambda: "hear" in set(a.tasks["name"]) and "hear" in set(b.tasks["name"]))
    a.send_event({"type": "order.paid", "data": {"order": 7}})
    assert a.wait(20).output == [{"order": 7}]
    time.sleep(0.5)
    assert b.phase == "EXECUTION_IN_PROGRESS"
    assert "event_received" in kinds(a) and "event_received" not in kinds(b)
    b.cancel()
    b.wait(20)
    with pytest.raises(InvalidInputError, match="needs a `type`"):
        a.send_event({"data": 1})


def test_effect_retries_are_in_the_lifecycle_log(lab: Lab) -> None:
    from ..conftest import closed_port_document

    execution = lab.run(closed_port_document("retried")).wait(60)
    assert execution.phase == "EXECUTION_FAILED"
    retries = execution.events.query("kind == 'retrying'")
    assert list(retries["detail"].map(lambda d: d["attempt"])) == [2, 3]
    assert list(retries["detail"].map(lambda d: d["delay_ms"])) == [500, 1000]


def test_a_pause_survives_continue_as_new(lab_factory: Any) -> None:
    lab = lab_factory(continue_after=60)
    doc = """
document: {dsl: '1.0.0', namespace: tests, name: long-loop, version: '1.0.0'}
do:
  - init: {set: {n: 0}}
  - step: {set: {n: '${ .n + 1 }'}}
  - nap: {wait: {milliseconds: 20}}
  - again:
      switch:
        - more: {when: '${ .n < 40 }', then: step}
        - done: {then: continue}
"""
    execution = lab.run(doc)
    assert_eventually(lambda: len(execution.tasks) > 30, timeout=20)
    execution.pause()
    execution.wait(20, until="paused")
    execution.resume()
    assert execution.wait(60).output == {"n": 40}
    runs = lab._check().call(_count_runs(lab, execution.record.runner_workflow_id))
    assert runs >= 2
    assert kinds(execution).count("paused") == 1


async def _count_runs(lab: Lab, workflow_id: str) -> int:
    return len([wf async for wf in lab.client.list_workflows(f"WorkflowId = '{workflow_id}'")])


def test_a_paused_run_can_be_cancelled(lab: Lab) -> None:
    execution = lab.run(STEPS)
    execution.wait(10, until="in_progress")
    execution.pause()
    execution.wait(10, until="paused")
    execution.cancel()
    assert execution.wait(20).phase == "EXECUTION_CANCELLED"
    assert kinds(execution)[-1] == "cancelled"
    assert "second" not in set(execution.tasks["name"])
    with pytest.raises(ExecutionStateError, match="it has ended"):
        execution.resume()


def test_an_approval_that_times_out_is_withdrawn(lab: Lab) -> None:
    doc = """
document: {dsl: '1.0.0', namespace: tests, name: expiring, version: '1.0.0'}
do:
  - guarded:
      try:
        - ask:
            listen: {to: {one: {with: {type: ai.stigmer.approval}}}}
            timeout: {after: {milliseconds: 300}}
      catch:
        errors: {with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout}}
        do:
          - escalate: {set: {escalated: true}}
"""
    execution = lab.run(doc).wait(30)
    assert execution.output == {"escalated": True}
    log = kinds(execution)
    assert log.index("approval_requested") < log.index("approval_withdrawn")
    withdrawn = execution.events.query("kind == 'approval_withdrawn'").iloc[0]["detail"]
    assert withdrawn["reason"] == "timed out or cancelled"
    assert execution.id not in set(lab.pending_approvals()["execution_id"])
