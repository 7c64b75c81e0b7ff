"""The execution view's buttons on a real lab: clicks steer the run, as the history shows."""

from __future__ import annotations

import pytest

from stigmer_nb.lab import Execution, Lab
from stigmer_nb.widgets.dashboard import Dashboard
from stigmer_nb.widgets.execution import view_for

from ..conftest import assert_eventually
from .test_steering_view import hidden, shown_buttons

pytestmark = pytest.mark.integration

STEER = """
document: {dsl: 1.0.0, namespace: t, name: steer-view, version: 1.0.0}
do:
  - a: {set: {x: 1}}
  - w: {wait: {seconds: 1}}
  - b: {set: {y: 2}}
"""
APPROVE = """
document: {dsl: 1.0.0, namespace: t, name: approve-view, version: 1.0.0}
do:
  - ok:
      listen: {to: {one: {with: {type: ai.stigmer.approval}}}}
      metadata: {prompt: 'Ship it?'}  # quoted: a bare ? ends a flow key
      output: {as: '${ .[0] }'}
"""
FAILS = """
document: {dsl: 1.0.0, namespace: t, name: fails-view, version: 1.0.0}
do:
  - a: {set: {x: 1}}
  - b:
      raise:
        error: {type: https://serverlessworkflow.io/spec/1.0.0/errors/validation, status: 400, title: Nope}
"""


def running(execution: Execution) -> bool:
    return execution.phase == "EXECUTION_IN_PROGRESS"


def test_pause_then_resume_from_the_buttons(lab: Lab) -> None:
    execution = lab.run(STEER)
    view = view_for(execution)
    assert_eventually(lambda: running(execution), 20)
    view.pause_button.click()
    execution.wait(30, until="paused")  # at the next task boundary
    assert_eventually(lambda: ">PAUSED<" in view.status.value, 10)
    assert shown_buttons(view.status.value, execution.id) == {"resume", "cancel", "terminate"}
    assert "pausing…" not in view.status.value
    view.resume_button.click()
    execution.wait(30)
    assert execution.phase == "EXECUTION_COMPLETED" and execution.output == {"y": 2}
    assert view.done and ">COMPLETED<" in view.status.value
    assert shown_buttons(view.status.value, execution.id) == {"rerun"}
    kinds = list(execution.events["kind"])
    assert "pause_requested" in kinds and "resume_requested" in kinds
    assert kinds.index("pause_requested") < kinds.index("resume_requested")


def test_approve_from_the_panel_completes_the_execution(lab: Lab) -> None:
    execution = lab.run(APPROVE)
    view = view_for(execution)
    execution.wait(30, until="approval")
    # The prompt is read once from the history, off the thread that sends the updates.
    assert_eventually(lambda: "Ship it?" in view.approval.value, 10)
    assert "waiting for approval: ok" in view.status.value and not hidden(
        view.status.value, "approval", execution.id
    )
    view.comment.value = "lgtm"
    view.approve_button.click()
    execution.wait(30)
    assert execution.phase == "EXECUTION_COMPLETED"
    assert execution.output["approved"] is True and execution.output["comment"] == "lgtm"
    assert (
        hidden(view.status.value, "approval", execution.id)
        and "waiting for approval" not in view.status.value
    )
    assert lab.pending_approvals().empty


def test_terminate_then_rerun_from_the_buttons(lab: Lab) -> None:
    execution = lab.run(STEER, input={"n": 7}, tags=["steer"])
    view = view_for(execution)
    assert_eventually(lambda: running(execution), 20)
    view.terminate_button.click()
    execution.wait(30)
    assert execution.phase == "EXECUTION_TERMINATED"
    assert "terminated from the notebook" in str(execution.error)
    assert view.done and shown_buttons(view.status.value, execution.id) == {"rerun"}
    view.rerun_button.click()
    assert len(view.started) == 1
    again = view.started[0].wait(30)
    record = again.record
    assert record.rerun_of_id == execution.id and record.tags == ["steer"]
    assert again.phase == "EXECUTION_COMPLETED" and again.input == {"n": 7}


def test_recover_a_failed_execution_from_its_button(lab: Lab) -> None:
    execution = lab.run(FAILS).wait(30)
    assert execution.phase == "EXECUTION_FAILED" and execution.record.checkpoint
    view = view_for(execution)
    assert shown_buttons(view.status.value, execution.id) == {"rerun", "recover"}
    view.recover_button.click()
    assert len(view.started) == 1
    recovered = view.started[0].wait(30)
    assert recovered.record.recovered_from_id == execution.id
    # It started again at the failed task (same document: it fails there again); `a` did not rerun.
    assert recovered.phase == "EXECUTION_FAILED" and list(recovered.tasks["name"]) == ["b"]


def test_dashboard_filters_by_tag(lab: Lab) -> None:
    red = lab.run(STEER, tags=["red", "shared"]).wait(30)
    blue = lab.run(STEER, tags=["blue", "shared"]).wait(30)
    dashboard = Dashboard(lab, tag="red", follow=False)
    try:
        assert red.id in dashboard.table.value and blue.id not in dashboard.table.value
        assert ">red<" in dashboard.table.value and ">shared<" in dashboard.table.value
        assert set(dict(dashboard.tag.options).values()) == {"", "red", "blue", "shared"}
        assert dashboard.filters["tag"] == "red"
        dashboard.tag.value = "shared"
        assert red.id in dashboard.table.value and blue.id in dashboard.table.value
        dashboard.tag.value = "blue"
        assert blue.id in dashboard.table.value and red.id not in dashboard.table.value
        dashboard.phase.value = "EXECUTION_TERMINATED"
        assert blue.id not in dashboard.table.value
        assert {"EXECUTION_PAUSED", "EXECUTION_TERMINATED"} <= set(dict(dashboard.phase.options).values())
    finally:
        dashboard.close()
