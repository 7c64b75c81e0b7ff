"""A long run continues as new between top-level tasks: one execution, one sequence, same result."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from stigmer_nb.lab import Lab

from ..conftest import assert_eventually

pytestmark = pytest.mark.integration

LOOP = """
document: {dsl: '1.0.0', namespace: tests, name: long-loop, version: '1.0.0'}
do:
  - init:
      set: {n: 0, started: '${ $workflow.startedAt.iso8601 }'}
      export: {as: '{runs: 0}'}
  - step:
      set: '${ . + {n: (.n + 1)} }'
      export: {as: '${ {runs: ($context.runs + 1)} }'}
  - breathe:
      wait: {milliseconds: 1}
  - again:
      switch:
        - more: {when: '.n < $workflow.input.rounds', then: step}
        - done: {then: continue}
  - finish:
      set: '${ {n: .n, runs: $context.runs, sameStart: (.started == $workflow.startedAt.iso8601)} }'
"""


def test_a_long_loop_continues_as_new_and_finishes_as_one_execution(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(continue_after=50)
    execution = lab.run(LOOP, input={"rounds": 24}).wait(120)
    assert execution.phase == "EXECUTION_COMPLETED", execution.record.error
    assert execution.output == {"n": 24, "runs": 24, "sameStart": True}
    updates = execution.updates
    seqs = list(updates["seq"])
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, nothing twice
    assert len(set(updates["task_id"])) == 1 + 3 * 24 + 1  # task-run ids stay unique across runs
    assert set(execution.tasks["status"]) == {"WORKFLOW_TASK_COMPLETED"}
    run_id = execution.record.runner_workflow_id

    async def runs() -> int:
        return len([wf async for wf in lab.client.list_workflows(f"WorkflowId = '{run_id}'")])

    assert_eventually(lambda: lab._check().call(runs()) >= 3, timeout=10)  # continued as new twice or more


def test_short_runs_do_not_continue(lab: Lab) -> None:
    execution = lab.run(LOOP, input={"rounds": 3}).wait(60)
    assert execution.output == {"n": 3, "runs": 3, "sameStart": True}
    run_id = execution.record.runner_workflow_id

    async def runs() -> int:
        return len([wf async for wf in lab.client.list_workflows(f"WorkflowId = '{run_id}'")])

    assert lab._check().call(runs()) == 1
