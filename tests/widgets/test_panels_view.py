"""The live view's panels (Tasks | Timeline | Graph): picked in the frontend, shown within the budget."""

from __future__ import annotations

import dataclasses
import re
import threading
from typing import Any

from stigmer_nb.widgets.execution import ExecutionView

from ..conftest import assert_eventually
from .conftest import FakeClock, Sent, snapshot, task

SVG = "<svg class='drawn'><g id='node-a' class='stigmer-node'/></svg>"


def view_of(snap, clock: FakeClock, **kwargs) -> ExecutionView:  # type: ignore[no-untyped-def]
    return ExecutionView(snap, clock=clock.monotonic, now=clock.now, **kwargs)


def pick(widget: Any, value: str) -> None:
    """What a click in the frontend does: a state update from the browser (never sent back by us,
    apart from ipywidgets' own echo of it)."""
    values = [v for _, v in widget.options] if isinstance(widget.options[0], tuple) else list(widget.options)
    widget.set_state({"index": values.index(value)})


def view_ids(view: ExecutionView) -> set[str]:
    ids = set()
    for w in (
        view.status,
        view.body,
        view.inputs,
        view.approval,
        view.panel,
        view.node,
        view.panels,
        view.widget,
    ):
        ids |= {w.model_id, w.layout.model_id}
    for button in view.buttons.values():
        ids |= {button.model_id, button.layout.model_id, button.style.model_id}
    return ids


def worst_second(times: list[float]) -> int:
    return max((sum(1 for t in times if start <= t < start + 1.0) for start in times), default=0)


def test_the_view_starts_on_the_task_table_with_the_selector_hidden() -> None:
    view = ExecutionView(snapshot(tasks=[task("a")]))
    assert [label for label, _ in view.panel.options] == ["Tasks", "Timeline", "Details"]  # no graph hook
    assert view.panel.value == "tasks" and "stigmer-tasks" in view.body.value
    assert "stigmer-panels" in view.panels._dom_classes and "stigmer-node-select" in view.node._dom_classes
    assert ".stigmer-node-select{display:none" in view.body.value
    assert view.widget.children.index(view.panels) == view.widget.children.index(view.body) - 1
    with_graph = ExecutionView(snapshot(tasks=[task("a")]), graph=lambda snap: None)
    assert with_graph.panel.options[2] == ("Graph", "graph")


def test_a_picked_panel_arrives_with_the_next_body_update(sent: Sent) -> None:
    clock = FakeClock()
    sent.clock = clock
    running = task("slow", "WORKFLOW_TASK_IN_PROGRESS", start=0, end=None)
    view = view_of(snapshot(tasks=[running]), clock)
    clock.advance(2)
    pick(view.panel, "timeline")  # no loop attached: applied by a flush at once
    assert "stigmer-timeline-bar" in view.body.value and "stigmer-tasks" not in view.body.value
    assert view.state.panel == "timeline"
    picked = [m for m in sent.updates({view.panel.model_id})]
    assert [m[3]["method"] for m in picked] == ["echo_update"]  # ipywidgets' echo of the click, no more
    # The running bar grows with the clock: a body update per tick, inside the budget.
    clock.advance(1.0)
    view.flush()
    assert "3.00s…" in view.body.value


def test_the_timeline_grows_live_within_four_messages_a_second(sent: Sent) -> None:
    clock = FakeClock()
    sent.clock = clock
    view = view_of(snapshot(tasks=[]), clock)
    pick(view.panel, "timeline")
    ids = view_ids(view)
    done: list = []
    loop = task("loop", "WORKFLOW_TASK_IN_PROGRESS", kind="for", start=0, end=None)
    shown: list[int] = []
    # 200 iterations over 5 s, a flush attempt after each (as eager as a caller can be).
    for i in range(200):
        done.append(task("inner", start=i * 0.025, end=i * 0.025 + 0.02, depth=1, parent=loop.task_id))
        clock.advance(0.025)
        view.offer(snapshot(tasks=[loop, *done], seq=i + 2))
        view.flush()
        shown.append(int(re.search(r"(\d+)/\d+ tasks", view.body.value)[1]))  # type: ignore[index]
        assert "stigmer-timeline-bar" in view.body.value
    final_loop = dataclasses.replace(loop, status="WORKFLOW_TASK_COMPLETED", completed_at=clock.now())
    view.offer(snapshot("EXECUTION_COMPLETED", [final_loop, *done], seq=500, output={}, duration=5.0))
    assert view.done and "stigmer-timeline-bar' data-status='IN_PROGRESS'" not in view.body.value
    assert len(set(shown)) >= 5 and shown == sorted(shown)  # it grew during the run, not only at the end
    updates = [m for m in sent.updates(ids) if m[3].get("method") != "echo_update"]
    assert len(updates) == view.messages
    assert {m[1] for m in updates} <= {view.status.model_id, view.body.model_id}
    assert worst_second([m[0] for m in updates]) <= 4


class Drawings:
    """A stand-in for the graph hook: counts calls, can be made slow, records what it saw."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, snap: Any) -> str:
        self.gate.wait(10)
        self.calls.append(len(snap.tasks))
        return SVG.replace("drawn", f"drawn-{len(snap.tasks)}")


def test_the_graph_panel_draws_off_the_thread_and_shows_task_details(sent: Sent) -> None:
    clock = FakeClock()
    sent.clock = clock
    graph = Drawings()
    graph.gate.clear()
    first = task("first", start=0, end=0.1, kind="set")
    first = dataclasses.replace(first, input={"in": 1}, output={"out": 2})
    view = view_of(snapshot(tasks=[first]), clock, graph=graph)
    ids = view_ids(view)
    pick(view.panel, "graph")
    assert "drawing the graph…" in view.body.value and graph.calls == []  # never drawn in the flush
    assert "stigmer-node-select{display:none" not in view.body.value  # the selector shows
    assert [v for _, v in view.node.options] == ["", first.reference]  # its choices, same update budget
    graph.gate.set()
    assert_eventually(lambda: graph.calls == [1], 5)
    clock.advance(1)
    view.flush()
    assert "drawn-1" in view.body.value and "&quot;out&quot;: 2" in view.body.value
    second = task("second", "WORKFLOW_TASK_IN_PROGRESS", start=0.1, end=None, kind="call:http")
    clock.advance(1)
    view.offer(snapshot(tasks=[first, second], seq=2))
    assert_eventually(lambda: graph.calls[-1] == 2, 5)  # redrawn for the new state
    clock.advance(1)
    view.flush()
    assert "drawn-2" in view.body.value and "data-reference='" + second.reference in view.body.value
    pick(view.node, first.reference)  # the person picks a task: its latest run's details
    clock.advance(1)  # (the budget was spent just now)
    view.flush()
    assert "data-reference='" + first.reference in view.body.value
    updates = [m for m in sent.updates(ids) if m[3].get("method") != "echo_update"]
    assert len(updates) == view.messages
    assert {m[1] for m in updates} <= {view.status.model_id, view.body.model_id, view.node.model_id}
    assert worst_second([m[0] for m in updates]) <= 4


def test_graph_drawings_are_rate_limited_and_stop_with_the_panel(sent: Sent) -> None:
    clock = FakeClock()
    graph = Drawings()
    view = view_of(snapshot(tasks=[]), clock, graph=graph)
    done: list = []
    for i in range(50):  # no graph asked for: nothing is drawn
        done.append(task(f"t{i}"))
        view.offer(snapshot(tasks=list(done), seq=i + 2))
    assert graph.calls == []
    pick(view.panel, "graph")
    assert_eventually(lambda: graph.calls == [50], 5)
    for i in range(50, 100):  # 50 transitions within a few milliseconds: one drawing a second
        done.append(task(f"t{i}"))
        view.offer(snapshot(tasks=list(done), seq=i + 2))
    assert_eventually(lambda: graph.calls[-1] == 100, 5)
    assert len(graph.calls) <= 4
    pick(view.panel, "tasks")
    count = len(graph.calls)
    view.offer(snapshot(tasks=[*done, task("later")], seq=200))
    assert len(graph.calls) == count


def test_a_broken_graph_hook_leaves_the_details(sent: Sent) -> None:
    clock = FakeClock()

    def broken(_snap: Any) -> str:
        raise RuntimeError("dot not found")

    view = view_of(snapshot(tasks=[task("a")]), clock, graph=broken)
    pick(view.panel, "graph")
    assert_eventually(lambda: view._graph is not None, 5)
    clock.advance(1)
    view.flush()
    assert "drawing the graph" not in view.body.value and "stigmer-details" in view.body.value


def test_after_the_end_a_pick_is_applied_at_once_with_one_message(sent: Sent) -> None:
    clock = FakeClock()
    sent.clock = clock
    view = view_of(snapshot("EXECUTION_FAILED", [task("a"), task("b", "WORKFLOW_TASK_FAILED")]), clock)
    assert view.done
    before = len(sent.updates({view.body.model_id}))
    pick(view.panel, "timeline")
    assert "stigmer-timeline-bar" in view.body.value
    pick(view.panel, "graph")
    assert "stigmer-details" in view.body.value and "b" in view.body.value
    assert len(sent.updates({view.body.model_id})) == before + 2  # one per pick
    assert view.flush() is None  # still nothing from updates


def test_the_final_update_waits_for_the_final_drawing_and_the_static_html_keeps_it(sent: Sent) -> None:
    clock = FakeClock()
    sent.clock = clock
    graph = Drawings()
    running = task("a", "WORKFLOW_TASK_IN_PROGRESS", end=None)
    view = view_of(snapshot(tasks=[running]), clock, graph=graph)
    pick(view.panel, "graph")
    assert_eventually(lambda: graph.calls == [1], 5)
    graph.gate.clear()  # the drawing of the end is slow
    clock.advance(1)
    view.offer(snapshot("EXECUTION_COMPLETED", [task("a"), task("b")], seq=3))
    assert view.flush() is not None and not view.done  # held back for the drawing
    graph.gate.set()
    assert_eventually(lambda: graph.calls[-1] == 2, 5)
    assert_eventually(lambda: view._drawn_graph() is not None, 5)
    view.flush()  # (the lab's loop would be woken by the drawing; here there is none)
    assert view.done and "drawn-2" in view.body.value
    assert "drawn-2" in view._repr_mimebundle_()["text/html"]  # the picture a saved notebook keeps
    after = len(sent.updates(view_ids(view)))
    clock.advance(2)
    view.flush()
    assert len(sent.updates(view_ids(view))) == after  # nothing follows the final update
