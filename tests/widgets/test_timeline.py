"""The task timeline and the graph panel's pieces: pure HTML from a snapshot and a moment."""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from stigmer_nb.widgets.panels import details_html, latest_run, node_options, render_graph
from stigmer_nb.widgets.render import render_execution
from stigmer_nb.widgets.static import execution_html
from stigmer_nb.widgets.timeline import MAX_TIMELINE_ROWS, render_timeline, tree_order

from .conftest import T0, snapshot, task

BAR = re.compile(
    r"class='stigmer-timeline-bar' data-status='(\w+)'[^>]*style='margin-left:([\d.]+)%;width:([\d.]+)%"
)


def bars(html: str) -> list[tuple[str, float, float]]:
    """(status, left %, width %) of every bar, top to bottom."""
    return [(s, float(left), float(width)) for s, left, width in BAR.findall(html)]


def loop_with_iterations() -> list[Any]:
    loop = task("loop", "WORKFLOW_TASK_IN_PROGRESS", kind="for", start=0.4, end=None)
    inner = [
        dataclasses.replace(
            task("inner", depth=1, start=0.5 + i * 0.4, end=0.8 + i * 0.4, parent=loop.task_id),
            reference="/do/1/loop/for/do/0/inner",
            input={"i": i},
            output={"square": i * i},
        )
        for i in range(3)
    ]
    flaky = task(
        "flaky", "WORKFLOW_TASK_IN_PROGRESS", depth=1, start=1.7, end=None, parent=loop.task_id, attempt=2
    )
    # A later top-level task started before the loop's last iterations: drawn below the loop's runs.
    after = task("audit", start=0.45, end=0.5)
    return [task("fetch", start=0, end=0.4), loop, after, *inner, flaky]


def test_one_bar_per_run_children_under_their_parent() -> None:
    tasks = loop_with_iterations()
    html = render_timeline(snapshot(tasks=tasks), T0 + timedelta(seconds=2))
    names = re.findall(r"padding-left:(\d+)px'>(?:└ )?(\w+)", html)
    assert names == [
        ("0", "fetch"),
        ("0", "loop"),
        ("12", "inner"),
        ("12", "inner"),
        ("12", "inner"),
        ("12", "flaky"),
        ("0", "audit"),
    ]
    assert [s for s, _, _ in bars(html)] == [
        "COMPLETED",
        "IN_PROGRESS",
        "COMPLETED",
        "COMPLETED",
        "COMPLETED",
        "IN_PROGRESS",
        "COMPLETED",
    ]
    assert "#1</span>" in html and "#3</span>" in html  # iterations of one task are numbered
    assert "↻2</span>" in html and "attempt 2" in html  # the retried run shows its attempt
    fetch, loop, *_ = bars(html)
    assert fetch == ("COMPLETED", 0.0, 20.0)  # 0.4 s of 2 s
    assert loop[1] == 20.0 and loop[2] == 80.0  # running: reaches "now"
    assert "6.10s" not in html and "1.60s…" in html  # a running run's duration so far


def test_running_bars_grow_with_the_clock() -> None:
    snap = snapshot(tasks=loop_with_iterations())
    early = bars(render_timeline(snap, T0 + timedelta(seconds=2)))
    later = bars(render_timeline(snap, T0 + timedelta(seconds=4)))
    assert later[1][2] > early[1][2] and later[1][1] + later[1][2] == pytest.approx(100.0, abs=0.02)
    assert later[0][2] < early[0][2]  # the finished run keeps its length on a longer axis
    assert "4.00s" in render_timeline(snap, T0 + timedelta(seconds=4))  # the axis' last tick


def test_a_finished_execution_ends_at_its_end() -> None:
    tasks = [task("a", start=0, end=0.5), task("b", "WORKFLOW_TASK_IN_PROGRESS", start=0.5, end=None)]
    snap = snapshot("EXECUTION_CANCELLED", tasks, duration=1.0)
    html = render_timeline(snap, T0 + timedelta(hours=1))  # "now" no longer matters
    assert bars(html) == [("COMPLETED", 0.0, 50.0), ("IN_PROGRESS", 50.0, 50.0)]
    assert "…" not in html


def test_workflow_time_never_runs_to_the_wall_clock() -> None:
    snap = snapshot(
        tasks=[task("a", start=0, end=30), task("b", "WORKFLOW_TASK_IN_PROGRESS", start=30, end=None)]
    )
    skipping = dataclasses.replace(snap, record=dataclasses.replace(snap.record, time_skipping=True))
    html = render_timeline(skipping, T0 + timedelta(seconds=1))  # wall clock far behind workflow time
    assert bars(html)[0] == ("COMPLETED", 0.0, 100.0) and "idle waits were skipped" in html


def test_huge_executions_are_capped_with_a_note() -> None:
    tasks = [task(f"step{i}", start=i * 0.01, end=i * 0.01 + 0.005) for i in range(1000)]
    tasks[10] = task("broken", "WORKFLOW_TASK_FAILED", start=0.1, end=0.2)
    tasks.append(task("current", "WORKFLOW_TASK_IN_PROGRESS", start=10, end=None))
    snap = snapshot(tasks=tasks)
    started = time.perf_counter()
    for _ in range(20):
        html = render_timeline(snap, T0 + timedelta(seconds=11))
    per_render = (time.perf_counter() - started) / 20
    assert per_render < 0.02, f"{per_render * 1000:.1f} ms per render"
    assert len(bars(html)) == MAX_TIMELINE_ROWS
    assert "921 other task runs not drawn" in html
    assert "broken" in html and "current" in html and "step999" in html and "step500" not in html
    assert len(html) < 60_000


def test_nothing_started_yet() -> None:
    assert "no task has started yet" in render_timeline(snapshot("EXECUTION_PENDING"), T0)


def test_tree_order_keeps_parallel_branches_together() -> None:
    fork = task("fork", "WORKFLOW_TASK_IN_PROGRESS", kind="fork", start=0, end=None)
    a = task("a", "WORKFLOW_TASK_IN_PROGRESS", depth=1, start=0.1, end=None, parent=fork.task_id)
    b = task("b", "WORKFLOW_TASK_IN_PROGRESS", depth=1, start=0.1, end=None, parent=fork.task_id)
    a1 = task("a1", depth=2, start=0.2, end=0.3, parent=a.task_id)
    b1 = task("b1", depth=2, start=0.2, end=0.3, parent=b.task_id)
    assert [t.name for t in tree_order([fork, a, b, b1, a1])] == ["fork", "a", "a1", "b", "b1"]


# --- the body's panels ---------------------------------------------------------------------------


def test_the_body_shows_the_chosen_panel_only() -> None:
    snap = snapshot(tasks=loop_with_iterations())
    now = T0 + timedelta(seconds=2)
    tasks = render_execution(snap, now)
    assert "stigmer-tasks" in tasks.body and "stigmer-timeline" not in tasks.body
    assert "> .stigmer-panels > .stigmer-node-select{display:none" in tasks.body  # no selector
    timeline = render_execution(snap, now, panel="timeline")
    assert "stigmer-timeline-bar" in timeline.body and "stigmer-tasks" not in timeline.body
    assert "7/7 tasks" not in timeline.body and "5/7 tasks" in timeline.body  # progress stays
    graph = render_execution(snap, now, panel="graph")
    assert "stigmer-graph-panel" in graph.body and "stigmer-node-select{display:none" not in graph.body
    assert (
        graph.nodes[0] == ("latest task", "")
        and ("inner · /do/1/loop/for/do/0/inner", "/do/1/loop/for/do/0/inner") in graph.nodes
    )
    assert len(graph.nodes) == 6  # one per task reference, iterations together
    assert tasks.nodes == () and timeline.nodes == ()
    with pytest.raises(ValueError, match="panel must be one of"):
        render_execution(snap, now, panel="gantt")


def test_the_graph_panel_shows_the_svg_or_says_it_is_drawing() -> None:
    snap = snapshot(tasks=loop_with_iterations())
    drawn = render_execution(
        snap, T0, panel="graph", graph_svg="<svg id='g'><g id='node-fetch' class='stigmer-node'/></svg>"
    )
    assert "<div class='stigmer-graph'" in drawn.body and "node-fetch" in drawn.body
    pending = render_execution(snap, T0, panel="graph", graph_pending=True)
    assert "drawing the graph…" in pending.body
    bare = render_execution(snap, T0, panel="graph")
    assert "stigmer-graph'" not in bare.body and "stigmer-details" in bare.body  # no fake graph


def test_details_of_the_latest_run_of_a_reference() -> None:
    snap = snapshot(tasks=loop_with_iterations())
    inner = details_html(snap, "/do/1/loop/for/do/0/inner")
    assert "run 3 of 3" in inner and "&quot;i&quot;: 2" in inner and "&quot;square&quot;: 4" in inner
    assert "<details class='stigmer-detail-output' open>" in inner
    latest = latest_run(snap)
    assert latest is not None and latest.name == "flaky"  # the run started last among those running
    flaky = details_html(snap, "")
    assert "flaky" in flaky and "attempt 2" in flaky and "IN_PROGRESS" in flaky
    failed = dataclasses.replace(snap.tasks[-1], status="WORKFLOW_TASK_FAILED", error={"title": "Boom"})
    broken = details_html(snapshot(tasks=[*snap.tasks[:-1], failed]), failed.reference)
    assert "stigmer-detail-error' open" in broken and "Boom" in broken
    assert "has not run yet" in details_html(snap, "/do/9/never")
    # The view passes what the frontend picked: a reference that is gone falls back to the latest.
    state = render_execution(snap, T0, panel="graph", selected="/do/9/never")
    assert "data-reference='/do/1/loop" not in state.body and "flaky" in state.body


def test_node_options_follow_first_start_order() -> None:
    snap = snapshot(tasks=loop_with_iterations())
    refs = [ref for _, ref in node_options(snap)]
    assert refs[0] == "" and refs[1:3] == [snap.tasks[0].reference, snap.tasks[1].reference]
    assert len(refs) == len(set(refs))


def test_static_html_keeps_the_final_timeline() -> None:
    done = snapshot(
        "EXECUTION_COMPLETED", [task("a", start=0, end=0.5), task("b", start=0.5, end=1.5)], output=1
    )
    html = execution_html(done, T0 + timedelta(days=1))
    assert "stigmer-tasks" in html and "stigmer-timeline" in html
    assert bars(html) == [
        ("COMPLETED", 0.0, pytest.approx(33.33, abs=0.01)),
        ("COMPLETED", pytest.approx(33.33, abs=0.01), pytest.approx(66.67, abs=0.01)),
    ]
    assert "<style>" not in html  # kept inline: a sanitiser drops style elements, not attributes


# --- the graph hook ------------------------------------------------------------------------------


def test_render_graph_is_none_without_the_graph_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "stigmer_nb.graph", None)  # import raises ImportError
    assert render_graph(snapshot(tasks=[task("a")]), {"do": []}) is None


def test_render_graph_calls_for_execution(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def for_execution(document: Any, task_states: Any) -> Any:
        seen.append((document, task_states))
        return SimpleNamespace(svg="<svg><g id='node-a' class='stigmer-node'/></svg>")

    monkeypatch.setitem(sys.modules, "stigmer_nb.graph", SimpleNamespace(for_execution=for_execution))
    snap = snapshot(tasks=[task("a")])
    document = {"document": {"name": "x"}, "do": [{"a": {"set": {}}}]}
    assert render_graph(snap, document) == "<svg><g id='node-a' class='stigmer-node'/></svg>"
    assert seen == [(document, snap.tasks)]
