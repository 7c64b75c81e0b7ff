"""The execution view's steering buttons and approval panel, without a kernel or a lab."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from stigmer_nb.errors import ExecutionStateError
from stigmer_nb.service import ExecutionSnapshot
from stigmer_nb.widgets.execution import ExecutionView
from stigmer_nb.widgets.render import (
    ACTIONS,
    available_actions,
    control_selector,
    render_execution,
    view_class,
)
from stigmer_nb.widgets.static import execution_html

from ..conftest import assert_eventually
from .conftest import T0, FakeClock, Sent, snapshot, task

CHECKPOINT = {"task": "b", "index": 1, "data": {"x": 1}, "context": {}}


def hidden(status: str, name: str, eid: str = "wex-test") -> bool:
    """True when the status' CSS hides the control of class ``stigmer-<name>`` of its view."""
    return f"{control_selector(view_class(eid), name)}{{display:none !important}}" in status


def shown_buttons(status: str, eid: str = "wex-test") -> set[str]:
    return {a for a in ACTIONS if not hidden(status, a, eid)}


def with_checkpoint(snap: ExecutionSnapshot, checkpoint: dict[str, Any] | None) -> ExecutionSnapshot:
    return ExecutionSnapshot(dataclasses.replace(snap.record, checkpoint=checkpoint), snap.tasks)


def approval_task(status: str = "WORKFLOW_TASK_IN_PROGRESS", name: str = "ok") -> Any:
    return task(name, status, kind="listen:approval", end=None if status.endswith("IN_PROGRESS") else 0.5)


class Calls:
    """Callbacks that record how they were called (and raise what a test asks)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, Exception] = {}

    def __call__(self, name: str, result: Any = None) -> Any:
        def call(*args: Any) -> Any:
            self.calls.append((name, *args))
            if name in self.fail:
                raise self.fail[name]
            return result

        return call

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def steering_view(snap: ExecutionSnapshot, clock: FakeClock, calls: Calls, **kwargs: Any) -> ExecutionView:
    return ExecutionView(
        snap,
        clock=clock.monotonic,
        now=clock.now,
        **{a: calls(a) for a in ("pause", "resume", "cancel", "terminate")},
        **kwargs,
    )


# --- which buttons show ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "checkpoint", "expected"),
    [
        ("EXECUTION_PENDING", None, {"pause", "cancel", "terminate"}),
        ("EXECUTION_IN_PROGRESS", None, {"pause", "cancel", "terminate"}),
        ("EXECUTION_PAUSED", None, {"resume", "cancel", "terminate"}),
        ("EXECUTION_FAILED", None, {"rerun"}),
        ("EXECUTION_FAILED", CHECKPOINT, {"rerun", "recover"}),
        ("EXECUTION_COMPLETED", None, {"rerun"}),
        ("EXECUTION_CANCELLED", None, {"rerun"}),
        ("EXECUTION_TERMINATED", CHECKPOINT, {"rerun"}),  # only a failure can be recovered
    ],
)
def test_the_phase_decides_the_buttons(phase: str, checkpoint: Any, expected: set[str]) -> None:
    snap = with_checkpoint(snapshot(phase, [task("a")]), checkpoint)
    assert set(available_actions(snap.record)) == expected
    state = render_execution(snap, T0)
    assert set(state.actions) == expected
    assert shown_buttons(state.status) == expected  # the CSS in the status shows exactly these
    assert hidden(state.status, "approval")  # nothing to approve
    # Only the view's own children: a re-run's view displayed inside it keeps its buttons.
    assert f".{view_class('wex-test')} ." not in state.status


def test_buttons_without_a_callback_never_show() -> None:
    snap = snapshot("EXECUTION_IN_PROGRESS", [task("a")])
    state = render_execution(snap, T0, enabled={"cancel"})
    assert state.actions == ("cancel",) and shown_buttons(state.status) == {"cancel"}
    view = ExecutionView(with_checkpoint(snapshot("EXECUTION_FAILED", [task("a")]), CHECKPOINT))
    assert view.state.actions == ()
    assert all(b.disabled and b.layout.display == "none" for b in view.buttons.values())


def test_an_ended_view_fixes_its_buttons_in_the_constructor() -> None:
    calls = Calls()
    snap = with_checkpoint(snapshot("EXECUTION_FAILED", [task("a")]), CHECKPOINT)
    view = ExecutionView(snap, rerun=calls("rerun"), recover=calls("recover"), cancel=calls("cancel"))
    shown = {a for a, b in view.buttons.items() if b.layout.display != "none"}
    assert shown == {"rerun", "recover"}
    assert not view.rerun_button.disabled and view.cancel_button.disabled
    assert view.approval_panel.layout.display == "none"


# --- pause, resume, terminate -----------------------------------------------------------------------


def test_pause_shows_pausing_until_the_run_stops_then_resume(sent: Sent) -> None:
    clock = FakeClock()
    calls = Calls()
    view = steering_view(snapshot(tasks=[task("w", "WORKFLOW_TASK_IN_PROGRESS", end=None)]), clock, calls)
    assert shown_buttons(view.status.value) == {"pause", "cancel", "terminate"}
    view.pause_button.click()
    view.pause_button.click()  # once is enough
    assert calls.names() == ["pause"]
    assert "pausing…" in view.status.value
    assert f"{control_selector(view_class('wex-test'), 'pause')}{{opacity:.5" in view.status.value
    # Still IN_PROGRESS: the task under way goes on to its end first.
    clock.advance(1)
    view.offer(snapshot(tasks=[task("w")], seq=2))
    view.flush()
    assert "pausing…" in view.status.value and ">IN_PROGRESS<" in view.status.value
    clock.advance(1)
    view.offer(snapshot("EXECUTION_PAUSED", [task("w")], seq=3))
    view.flush()
    assert ">PAUSED<" in view.status.value and "pausing…" not in view.status.value
    assert shown_buttons(view.status.value) == {"resume", "cancel", "terminate"}
    view.resume_button.click()
    assert calls.names() == ["pause", "resume"]
    assert "resuming…" not in view.status.value  # two messages just went: the budget holds it back
    clock.advance(1)
    view.flush()
    assert "resuming…" in view.status.value
    clock.advance(1)
    view.offer(snapshot(tasks=[task("w"), task("b", "WORKFLOW_TASK_IN_PROGRESS", end=None)], seq=4))
    view.flush()
    assert "resuming…" not in view.status.value
    assert shown_buttons(view.status.value) == {"pause", "cancel", "terminate"}
    view.pause_button.click()  # a second pause is a new request
    assert calls.names() == ["pause", "resume", "pause"]


def test_terminate_and_then_nothing_but_rerun(sent: Sent) -> None:
    clock = FakeClock()
    calls = Calls()
    view = steering_view(snapshot(tasks=[task("w", "WORKFLOW_TASK_IN_PROGRESS", end=None)]), clock, calls)
    view.terminate_button.click()
    assert calls.names() == ["terminate"] and "terminating…" in view.status.value
    view.offer(snapshot("EXECUTION_TERMINATED", [task("w", "WORKFLOW_TASK_FAILED")], seq=5))
    assert view.done and ">TERMINATED<" in view.status.value and "terminating…" not in view.status.value
    assert shown_buttons(view.status.value) == set()  # no rerun callback given
    view.terminate_button.click()
    view.pause_button.click()
    assert calls.names() == ["terminate"]


def test_a_failed_action_is_one_line_never_a_traceback(sent: Sent) -> None:
    clock = FakeClock()
    calls = Calls()
    calls.fail["pause"] = ExecutionStateError("execution wex-test has no run in progress\nmore detail")
    view = steering_view(snapshot(tasks=[task("w", "WORKFLOW_TASK_IN_PROGRESS", end=None)]), clock, calls)
    view.pause_button.click()  # raises nothing
    line = "pause failed: execution wex-test has no run in progress"
    assert line in view.status.value and "more detail" not in view.status.value
    assert view.pause_button.tooltip == line
    assert "pausing…" not in view.status.value
    calls.fail["terminate"] = RuntimeError("boom")
    clock.advance(1)
    view.terminate_button.click()
    assert "terminate failed: RuntimeError: boom" in view.status.value
    assert line not in view.status.value  # one notice at a time
    assert view.terminate_button.tooltip == "terminate failed: RuntimeError: boom"
    # A retry that works puts the tooltip back; a new phase drops the notice.
    del calls.fail["terminate"]
    clock.advance(1)
    view.terminate_button.click()
    assert view.terminate_button.tooltip.startswith("Stop it at once")
    assert "failed" not in view.status.value


def test_steering_costs_no_messages_beyond_the_budget(sent: Sent) -> None:
    clock = FakeClock()
    sent.clock = clock
    calls = Calls()
    view = steering_view(snapshot(tasks=[]), clock, calls)
    ids = {view.status.model_id, view.body.model_id, view.approval.model_id}
    for button in view.buttons.values():
        ids |= {button.model_id, button.layout.model_id, button.style.model_id}
    phases = ["EXECUTION_IN_PROGRESS", "EXECUTION_PAUSED"]
    done: list = []
    # 100 transitions over 2.5 s, pausing and resuming every few, clicks in between.
    for i in range(100):
        done.append(task(f"t{i}", start=i * 0.025, end=i * 0.025 + 0.01))
        clock.advance(0.025)
        if i % 7 == 0:
            (view.pause_button if i % 14 == 0 else view.resume_button).click()
        view.offer(snapshot(phases[(i // 10) % 2], list(done), seq=i + 2))
        view.flush()
    view.offer(snapshot("EXECUTION_COMPLETED", list(done), seq=500, output={}, duration=2.5))
    assert view.done and ">COMPLETED<" in view.status.value
    updates = sent.updates(ids)
    assert len(updates) == view.messages
    # Buttons show and hide through the status' CSS: no message ever goes to a button or layout.
    assert {m[1] for m in updates} <= {view.status.model_id, view.body.model_id}
    times = [m[0] for m in updates]
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert worst <= 4, f"{worst} messages within one second"


# --- re-run and recover ---------------------------------------------------------------------------------


def test_rerun_and_recover_start_and_show_new_executions() -> None:
    calls = Calls()
    shown: list[Any] = []
    snap = with_checkpoint(
        snapshot("EXECUTION_FAILED", [task("b", "WORKFLOW_TASK_FAILED")], error={"title": "x"}), CHECKPOINT
    )
    view = ExecutionView(
        snap, rerun=calls("rerun", "new-1"), recover=calls("recover", "new-2"), show=shown.append
    )
    assert shown_buttons(view.status.value) == {"rerun", "recover"}
    view.rerun_button.click()
    view.recover_button.click()
    assert calls.names() == ["rerun", "recover"]
    assert view.started == ["new-1", "new-2"] and shown == ["new-1", "new-2"]


def test_a_failed_rerun_says_so_in_the_view() -> None:
    calls = Calls()
    calls.fail["rerun"] = ExecutionStateError("execution wex-test had secret runtime values (TOKEN)")
    view = ExecutionView(snapshot("EXECUTION_COMPLETED", [task("a")]), rerun=calls("rerun"))
    view.rerun_button.click()
    line = "re-run failed: execution wex-test had secret runtime values (TOKEN)"
    assert view.started == [] and view.rerun_button.tooltip == line
    assert [o["text"] for o in view.started_output.outputs] == [line + "\n"]


# --- approvals ----------------------------------------------------------------------------------------


def test_static_html_says_what_the_execution_waits_for() -> None:
    snap = snapshot(tasks=[task("a"), approval_task(name="ship")])
    html = execution_html(snap, T0)
    assert "waiting for approval: ship" in html and "<style>" not in html
    assert "Ship it?" in execution_html(snap, T0, prompts={snap.tasks[1].task_id: "Ship it?"})
    done = snapshot("EXECUTION_COMPLETED", [task("a"), approval_task("WORKFLOW_TASK_COMPLETED", "ship")])
    assert "waiting for approval" not in execution_html(done, T0)


def test_the_approval_panel_asks_approves_and_goes_away(sent: Sent) -> None:
    clock = FakeClock()
    calls = Calls()
    lookups: list[int] = []
    waiting = approval_task()
    prompts = {waiting.task_id: "Ship it?"}

    release = threading.Event()

    def read_prompts() -> dict[str, Any]:  # a history read that takes a while
        lookups.append(1)
        release.wait(5)
        return prompts

    view = steering_view(
        snapshot(tasks=[task("a")]),
        clock,
        calls,
        approve=calls("approve"),
        reject=calls("reject"),
        prompts=read_prompts,
    )
    assert hidden(view.status.value, "approval") and view.approval.value == ""
    for seq in range(2, 12):  # many updates while it waits: one lookup
        clock.advance(0.3)
        view.offer(snapshot(tasks=[task("a"), waiting], seq=seq))
        view.flush()
    # The request shows at once, its prompt once the (slow) read returns.
    assert "waiting for approval: ok" in view.status.value
    assert ">ok<" in view.approval.value and "Ship it?" not in view.approval.value
    release.set()
    assert_eventually(lambda: view.prompts == prompts, 5)
    clock.advance(1)
    view.flush()
    assert lookups == [1]
    assert "waiting for approval: ok" in view.status.value and not hidden(view.status.value, "approval")
    assert "Ship it?" in view.approval.value and ">ok<" in view.approval.value
    view.comment.value = "  lgtm  "
    clock.advance(1)  # a fresh budget window, however the updates above went
    view.approve_button.click()
    view.reject_button.click()  # a decision is on its way: ignored
    assert calls.calls == [("approve", "lgtm", waiting.task_id)]
    assert "approving…" in view.status.value
    clock.advance(1)
    view.flush()
    assert view.comment.value == ""  # cleared for the next request, within the budget
    clock.advance(1)
    view.offer(
        snapshot(tasks=[task("a"), dataclasses.replace(waiting, status="WORKFLOW_TASK_COMPLETED")], seq=20)
    )
    view.flush()
    assert hidden(view.status.value, "approval")  # the status (and its CSS) goes first
    clock.advance(1)
    view.flush()
    assert view.approval.value == ""  # then the rest, within the budget
    assert "approving…" not in view.status.value and "waiting for approval" not in view.status.value


def test_a_rejection_that_fails_keeps_the_panel() -> None:
    clock = FakeClock()
    calls = Calls()
    calls.fail["reject"] = ExecutionStateError("execution wex-test is not waiting for an approval")
    waiting = approval_task()
    view = steering_view(snapshot(tasks=[waiting]), clock, calls, reject=calls("reject"))
    assert hidden(view.status.value, "approve") and not hidden(view.status.value, "reject")
    view.comment.value = "no"
    view.reject_button.click()
    assert calls.calls == [("reject", "no", waiting.task_id)]
    assert "reject failed: execution wex-test is not waiting for an approval" in view.status.value
    assert view.comment.value == "no" and not hidden(view.status.value, "approval")
    view.reject_button.click()  # it can be tried again
    assert len(calls.calls) == 2
