"""The live execution view, without a kernel: trait values after simulated updates."""

from __future__ import annotations

import time

import pytest

from stigmer_nb.widgets.execution import WIDGET_MIME, ExecutionView, MessageBudget
from stigmer_nb.widgets.render import MAX_ROWS, format_elapsed, render_execution, view_class
from stigmer_nb.widgets.static import execution_html

from .conftest import T0, FakeClock, Sent, snapshot, task

PROBLEM = {
    "type": "https://serverlessworkflow.io/spec/1.0.0/errors/validation",
    "status": 400,
    "title": "Not enough",
    "detail": "only 3",
    "instance": "/do/1/fail",
}


def view_of(snap, clock: FakeClock, **kwargs) -> ExecutionView:  # type: ignore[no-untyped-def]
    return ExecutionView(snap, clock=clock.monotonic, now=clock.now, **kwargs)


def model_ids(view: ExecutionView) -> set[str]:
    return {w.model_id for w in (view.status, view.body, view.inputs, view.cancel_button, view.widget)}


# --- rendering is a pure function of the snapshot ---------------------------------------------


def test_render_shows_header_progress_nesting_and_errors() -> None:
    snap = snapshot(
        tasks=[
            task("fetch", start=0, end=0.4),
            task("loop", "WORKFLOW_TASK_IN_PROGRESS", kind="for", start=0.4, end=None),
            task("inner", "WORKFLOW_TASK_FAILED", depth=1, start=0.5, end=0.6, error=PROBLEM, attempt=2),
        ],
        input={"name": "Ada"},
    )
    state = render_execution(snap, T0.replace(second=2, microsecond=500_000))
    assert "greeter" in state.status and "wex-test" in state.status
    assert "data-phase='EXECUTION_IN_PROGRESS'" in state.status and ">IN_PROGRESS<" in state.status
    assert "elapsed 2s" in state.status  # whole seconds while it runs
    assert (state.finished, state.known) == (2, 3) and "2/3 tasks" in state.body
    assert "padding:1px 8px 1px 22px" in state.body  # nested one level
    assert "<details><summary" in state.body and "Not enough" in state.body and "attempt 2" in state.body
    assert "&quot;Ada&quot;" in state.inputs and "<details class='stigmer-input'" in state.inputs
    assert ".stigmer-cancel{display:none" not in state.status  # Cancel stays visible while it runs
    assert state.actions == ("pause", "cancel", "terminate")


def test_render_of_finished_executions() -> None:
    done = render_execution(
        snapshot("EXECUTION_COMPLETED", [task("a")], output={"sum": 3}, duration=1.234), T0
    )
    assert ">COMPLETED<" in done.status and "elapsed 1.23s" in done.status
    assert "stigmer-output" in done.body and "&quot;sum&quot;: 3" in done.body
    assert f".{view_class('wex-test')} > .stigmer-header > .stigmer-cancel{{display:none" in done.status
    failed = render_execution(snapshot("EXECUTION_FAILED", [task("a")], error=PROBLEM), T0)
    assert "stigmer-problem" in failed.body and "only 3" in failed.body and "/do/1/fail" in failed.body
    assert "stigmer-output" not in failed.body
    pending = render_execution(snapshot("EXECUTION_PENDING"), T0)
    assert "queued 0s" in pending.status and "0/0 tasks" in pending.body


def test_render_caps_long_task_tables() -> None:
    tasks = [task(f"step{i}", start=i, end=i + 0.5) for i in range(MAX_ROWS + 50)]
    tasks.append(task("current", "WORKFLOW_TASK_IN_PROGRESS", start=200, end=None))
    state = render_execution(snapshot(tasks=tasks), T0)
    assert state.body.count("<tr data-status") == MAX_ROWS
    assert "51 earlier tasks not shown" in state.body and "current" in state.body


def test_elapsed_formats() -> None:
    assert format_elapsed(0.4212, running=False) == "0.42s"
    assert format_elapsed(12.34, running=False) == "12.3s"
    assert format_elapsed(3.9, running=True) == "3s"
    assert format_elapsed(245, running=True) == "4m 05s"
    assert format_elapsed(7380, running=False) == "2h 03m"


def test_static_html_is_the_same_rendering() -> None:
    html = execution_html(snapshot("EXECUTION_COMPLETED", [task("a")], output=1), T0)
    assert (
        html.startswith("<div class='stigmer-execution'>") and ">COMPLETED<" in html and "1/1 tasks" in html
    )


# --- the view: values, coalescing, message budget ------------------------------------------------


def test_view_applies_the_newest_snapshot(sent: Sent) -> None:
    clock = FakeClock()
    view = view_of(snapshot("EXECUTION_PENDING"), clock)
    assert "PENDING" in view.status.value and view.cancel_button.description == "Cancel"
    clock.advance(0.5)
    view.offer(snapshot(tasks=[task("a", "WORKFLOW_TASK_IN_PROGRESS", end=None)], seq=2))
    view.offer(snapshot(tasks=[task("a"), task("b", "WORKFLOW_TASK_IN_PROGRESS", end=None)], seq=3))
    view.offer(snapshot(seq=1))  # an older snapshot arriving late is ignored
    assert view.flush() is not None
    assert "IN_PROGRESS" in view.status.value and "1/2 tasks" in view.body.value
    assert view.state.known == 2


def test_updates_are_coalesced_to_at_most_four_messages_a_second(sent: Sent) -> None:
    clock = FakeClock()
    sent.clock = clock
    view = view_of(snapshot(tasks=[]), clock)
    ids = model_ids(view)
    done: list = []
    # 200 task transitions over 5 s, a flush attempt after each one (as eager as a caller can be).
    for i in range(200):
        done.append(task(f"t{i}", start=i * 0.025, end=i * 0.025 + 0.01))
        clock.advance(0.025)
        view.offer(snapshot(tasks=list(done), seq=i + 2))
        view.flush()
    clock.advance(0.01)
    view.offer(snapshot("EXECUTION_COMPLETED", list(done), seq=500, output={"n": 200}, duration=5.0))
    assert view.done and ">COMPLETED<" in view.status.value and "200/200 tasks" in view.body.value
    times = [m[0] for m in sent.updates(ids)]
    assert len(times) == view.messages
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert worst <= 4, f"{worst} messages within one second"
    assert len(times) >= 8  # it still updated live, not only at the end
    assert all("state" in m[3] for m in sent.updates(ids))  # value updates only
    view.offer(snapshot("EXECUTION_COMPLETED", list(done), seq=600))
    assert view.flush() is None  # nothing after the final state


def test_the_final_state_goes_out_at_once_even_right_after_an_update(sent: Sent) -> None:
    clock = FakeClock()
    sent.clock = clock
    view = view_of(snapshot(tasks=[task("a", "WORKFLOW_TASK_IN_PROGRESS", end=None)]), clock)
    view.offer(snapshot(tasks=[task("a")], seq=2))
    view.flush()
    view.offer(snapshot(tasks=[task("a"), task("b", "WORKFLOW_TASK_IN_PROGRESS", end=None)], seq=3))
    assert view.flush() is not None
    clock.advance(0.01)
    view.offer(
        snapshot("EXECUTION_FAILED", [task("a"), task("b", "WORKFLOW_TASK_FAILED")], seq=4, error=PROBLEM)
    )
    assert view.done and ">FAILED<" in view.status.value and "only 3" in view.body.value
    assert view.budget.in_window() <= 4


def test_the_clock_ticks_while_running() -> None:
    clock = FakeClock()
    view = view_of(snapshot(tasks=[task("a", "WORKFLOW_TASK_IN_PROGRESS", end=None)]), clock)
    clock.advance(1.7)
    delay = view.flush()
    assert "elapsed 1s" in view.status.value
    assert delay == pytest.approx(0.31, abs=0.02)  # due when the shown second rolls over
    clock.advance(delay or 0)
    view.flush()
    assert "elapsed 2s" in view.status.value


def test_message_budget_keeps_room_for_the_final_update() -> None:
    clock = FakeClock()
    budget = MessageBudget(4, reserve=2, clock=clock.monotonic)
    assert budget.delay(2) == 0
    budget.spend(2)
    # A window later, plus a margin for the messages' delivery jitter.
    assert budget.delay(1) == pytest.approx(1.03)
    assert budget.delay(2, final=True) == 0
    clock.advance(1.0)
    assert budget.delay(2) == 0


def test_cancel_button_calls_cancel_once_and_hides_at_the_end(sent: Sent) -> None:
    clock = FakeClock()
    calls: list[int] = []
    view = view_of(
        snapshot(tasks=[task("w", "WORKFLOW_TASK_IN_PROGRESS", end=None)]),
        clock,
        cancel=lambda: calls.append(1),
    )
    assert not view.cancel_button.disabled and "stigmer-cancel" in view.cancel_button._dom_classes
    assert view_class("wex-test") in view.widget._dom_classes
    view.cancel_button.click()
    view.cancel_button.click()
    assert calls == [1]
    assert "cancelling…" in view.status.value
    view.offer(
        snapshot(
            "EXECUTION_CANCELLED", [task("w", "WORKFLOW_TASK_FAILED")], seq=9, error={"title": "Cancelled"}
        )
    )
    assert ">CANCELLED<" in view.status.value and "display:none" in view.status.value
    view.cancel_button.click()
    assert calls == [1]


def test_a_finished_execution_has_no_cancel() -> None:
    view = ExecutionView(snapshot("EXECUTION_COMPLETED", [task("a")]), cancel=lambda: None)
    assert view.done and view.cancel_button.disabled and view.cancel_button.layout.display == "none"


def test_repr_is_cheap_and_the_bundle_carries_static_html() -> None:
    view = ExecutionView(snapshot(tasks=[task(f"t{i}") for i in range(500)]))
    started = time.perf_counter()
    for _ in range(1000):
        text = repr(view)
    assert time.perf_counter() - started < 0.05
    assert text == "<ExecutionView wex-test EXECUTION_IN_PROGRESS>"
    bundle = view._repr_mimebundle_()
    assert bundle[WIDGET_MIME]["model_id"] == view.widget.model_id
    assert "stigmer-execution" in bundle["text/html"] and bundle["text/plain"] == text


def test_fifty_views_stay_responsive(sent: Sent) -> None:
    clock = FakeClock()
    views = [view_of(snapshot(eid=f"wex-{i}", tasks=[]), clock) for i in range(50)]
    tasks = [task(f"t{i}", depth=i % 3) for i in range(60)]
    started = time.perf_counter()
    for round_ in range(10):  # ten updates of 50 views with 60-task tables
        clock.advance(0.3)
        for i, view in enumerate(views):
            view.offer(snapshot(eid=f"wex-{i}", tasks=tasks[: 6 * (round_ + 1)], seq=round_ + 2))
            view.flush()
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"500 view updates took {elapsed:.2f}s"
    assert all(v.state.known == 60 for v in views)


def test_displays_get_the_final_static_html() -> None:
    class Handle:
        bundles: list[dict] = []

        def update(self, bundle: dict, raw: bool = False) -> None:
            self.bundles.append(bundle)

    clock = FakeClock()
    view = view_of(snapshot(tasks=[]), clock)
    handle = Handle()
    view.add_display(handle)
    assert handle.bundles == []
    view.offer(snapshot("EXECUTION_COMPLETED", [task("a")], seq=5, output="hi"))
    assert len(handle.bundles) == 1 and ">COMPLETED<" in handle.bundles[0]["text/html"]
    assert WIDGET_MIME in handle.bundles[0]
    late = Handle()
    late.bundles = []
    view.add_display(late)  # displayed after the end: updated at once
    assert len(late.bundles) == 1
