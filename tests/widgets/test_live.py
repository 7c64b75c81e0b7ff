"""Views and the dashboard on a real lab: updates come from the lab's thread while the test waits."""

from __future__ import annotations

import time
from typing import Any

import pytest

from stigmer_nb.lab import Lab
from stigmer_nb.widgets import execution as execution_module
from stigmer_nb.widgets.execution import WIDGET_MIME, view_for

from ..conftest import assert_eventually
from .conftest import Sent

pytestmark = pytest.mark.integration

SLOW = """
document: {dsl: '1.0.0', namespace: widgets, name: slow, version: '1.0.0'}
do:
  - first:
      set: {n: 1}
  - pause:
      wait: {milliseconds: 300}
  - group:
      do:
        - inner:
            set: {n: 2}
"""
STUCK = """
document: {dsl: '1.0.0', namespace: widgets, name: stuck, version: '1.0.0'}
do:
  - prepare:
      set: {n: 1}
  - forever:
      wait: {seconds: 60}
"""
RAISES = """
document: {dsl: '1.0.0', namespace: widgets, name: raises, version: '1.0.0'}
do:
  - fail:
      raise:
        error: {type: https://serverlessworkflow.io/spec/1.0.0/errors/validation, status: 400, title: Nope}
"""


def is_png(image: Any) -> bool:
    return bytes(image.value).startswith(b"\x89PNG")


def test_a_view_follows_its_execution_from_the_labs_thread(lab: Lab, sent: Sent) -> None:
    execution = lab.run(SLOW, input={"who": "tests"})
    view = view_for(execution)
    assert view_for(execution) is view  # one view per execution
    ids = {w.model_id for w in (view.status, view.body)}
    started = time.monotonic()
    execution.wait(30)
    # wait() returns after the final state reached the widgets: nothing to poll for.
    assert view.done and ">COMPLETED<" in view.status.value
    assert "4/4 tasks" in view.body.value and "padding:1px 8px 1px 22px" in view.body.value
    assert "&quot;who&quot;" in view.inputs.value
    sent_at = [m for m in sent.updates(ids)]
    assert len(sent_at) == view.messages <= 4 * (time.monotonic() - started) + 4


def test_cancel_button_cancels_a_running_execution(lab: Lab) -> None:
    execution = lab.run(STUCK)
    view = view_for(execution)
    assert_eventually(lambda: execution.phase == "EXECUTION_IN_PROGRESS" and len(execution.tasks) == 2, 20)
    view.cancel_button.click()
    execution.wait(30)
    assert execution.phase == "EXECUTION_CANCELLED"
    assert ">CANCELLED<" in view.status.value and "display:none" in view.status.value
    statuses = execution.tasks.set_index("name")["status"]
    assert statuses["forever"] != "WORKFLOW_TASK_IN_PROGRESS"  # running tasks are marked


def test_the_bundle_in_a_kernel_has_the_widget_and_static_html(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = lab.run(RAISES).wait(30)
    plain = execution._repr_mimebundle_()
    assert WIDGET_MIME not in plain and "Nope" in plain["text/html"]  # no kernel: static only
    monkeypatch.setattr(execution_module, "_kernel_running", lambda: True)
    bundle = execution._repr_mimebundle_()
    assert bundle[WIDGET_MIME]["model_id"] == view_for(execution).widget.model_id
    assert ">FAILED<" in bundle["text/html"] and bundle["text/plain"].endswith("EXECUTION_FAILED>")


def test_history_and_tasks_filters(lab: Lab) -> None:
    ok = lab.run(SLOW).wait(30)
    bad = lab.run(RAISES).wait(30)
    assert list(lab.history(workflow="slow")["id"]) == [ok.id]
    assert list(lab.history(phase="failed")["id"]) == [bad.id]
    assert set(lab.history(phase=["completed", "failed"], since="1h")["id"]) == {ok.id, bad.id}
    assert lab.history(since="2099-01-01").empty
    assert set(lab.tasks(workflow="raises")["execution_id"]) == {bad.id}
    assert list(lab.tasks(status="failed")["name"]) == ["fail"]
    assert set(lab.tasks(phase="completed")["name"]) == {"first", "pause", "group", "inner"}
    with pytest.raises(Exception, match="did you mean 'slow'"):
        lab.history(workflow="slwo")


def test_dashboard_follows_the_history(lab: Lab) -> None:
    first = lab.run(SLOW).wait(30)
    dashboard = lab.dashboard()
    dashboard.poll = 0.2
    try:
        assert first.id in dashboard.table.value and "1</b> executions" in dashboard.summary.value
        assert is_png(dashboard.phase_chart)
        assert is_png(dashboard.duration_chart)
        assert is_png(dashboard.throughput_chart)
        assert dashboard.selected.value == first.id and is_png(dashboard.timeline)
        # New executions appear as they start and finish, without anyone calling refresh().
        second = lab.run(RAISES).wait(30)
        assert_eventually(
            lambda: second.id in dashboard.table.value and "FAILED" in dashboard.table.value, 10
        )
        assert_eventually(lambda: dashboard.selected.value == second.id, 10)
        # Filters.
        dashboard.phase.value = "EXECUTION_COMPLETED"
        assert first.id in dashboard.table.value and second.id not in dashboard.table.value
        dashboard.phase.value = ""
        dashboard.workflow.value = "raises"
        assert second.id in dashboard.table.value and first.id not in dashboard.table.value
        assert set(dict(dashboard.workflow.options).values()) == {"", "slow", "raises"}
        dashboard.workflow.value = ""
        dashboard.window.value = "15min"
        assert len(dashboard.executions) == 2
        # A chosen execution stays chosen.
        dashboard.selected.value = first.id
        assert is_png(dashboard.timeline)
        third = lab.run(SLOW).wait(30)
        assert_eventually(lambda: third.id in dashboard.table.value, 10)
        assert dashboard.selected.value == first.id
        html = dashboard.static_html()
        assert "data:image/png;base64," in html and third.id in html
        assert repr(dashboard).startswith("<Dashboard 3 executions")
    finally:
        dashboard.close()
