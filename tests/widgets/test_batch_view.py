"""The batch progress view: counts from snapshots, coalesced updates, and a real ``lab.map``."""

from __future__ import annotations

import time

import pytest

from stigmer_nb.lab import Lab
from stigmer_nb.widgets.batch import BatchView, batch_html, batch_view_for, render_batch
from stigmer_nb.widgets.execution import WIDGET_MIME

from ..conftest import assert_eventually
from .conftest import FakeClock, Sent, snapshot

MAYBE_FAILS = """
document: {dsl: 1.0.0, namespace: t, name: batch-view, version: 1.0.0}
do:
  - boom:
      if: ${ .fail == true }
      raise:
        error: {type: https://serverlessworkflow.io/spec/1.0.0/errors/validation, status: 400, title: Nope}
  - w: {wait: {milliseconds: 200}}
  - b: {set: {y: 2}}
"""


def ids(n: int) -> list[str]:
    return [f"wex-{i}" for i in range(n)]


def test_render_batch_counts_and_bar() -> None:
    html = render_batch(
        "bat-1",
        5,
        {"EXECUTION_COMPLETED": 2, "EXECUTION_FAILED": 1, "EXECUTION_IN_PROGRESS": 2},
        tags=["nightly"],
    )
    assert "3/5 finished" in html and "bat-1" in html and ">nightly<" in html
    assert "2 completed" in html and "1 failed" in html and "2 in progress" in html
    assert "width:40.00%" in html and "width:20.00%" in html  # completed and failed segments
    assert html.index("2 completed") < html.index("1 failed") < html.index("2 in progress")


def test_counts_come_from_snapshots_and_the_end_goes_out_at_once(sent: Sent) -> None:
    clock = FakeClock()
    sent.clock = clock
    n = 200
    view = BatchView("bat-1", ids(n), {}, clock=clock.monotonic)
    assert "0/200 finished" in view.bar.value and "200 pending" in view.bar.value
    for i in range(n):  # every execution starts, then finishes, over 5 s
        clock.advance(0.0125)
        view.offer(snapshot(eid=f"wex-{i}", seq=2))
        view.flush()
    for i in range(n):
        clock.advance(0.0125)
        phase = "EXECUTION_FAILED" if i % 10 == 0 else "EXECUTION_COMPLETED"
        view.offer(snapshot(phase, eid=f"wex-{i}", seq=3))
        if i < n - 1:
            view.flush()
    assert view.done and "200/200 finished" in view.bar.value
    assert "180 completed" in view.bar.value and "20 failed" in view.bar.value
    assert view.counts() == {"EXECUTION_COMPLETED": 180, "EXECUTION_FAILED": 20}
    times = [m[0] for m in sent.updates({view.bar.model_id})]
    assert len(times) == view.messages >= 8  # live, not only at the end
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert worst <= 4, f"{worst} messages within one second"
    view.offer(snapshot("EXECUTION_COMPLETED", eid="wex-0", seq=9))
    assert view.flush() is None


def test_an_ended_execution_stays_ended_and_strangers_are_ignored() -> None:
    view = BatchView("bat-1", ids(3), {"wex-0": "EXECUTION_COMPLETED"})
    view.offer(snapshot("EXECUTION_IN_PROGRESS", eid="wex-0", seq=9))  # late and out of order
    view.offer(snapshot("EXECUTION_COMPLETED", eid="wex-other"))
    assert view.counts() == {"EXECUTION_COMPLETED": 1, "EXECUTION_PENDING": 2}
    # A read of the history after subscribing: taken where no snapshot came, or when it says ended.
    view.offer(snapshot("EXECUTION_PAUSED", eid="wex-1", seq=4))
    view.catch_up({"wex-1": "EXECUTION_IN_PROGRESS", "wex-2": "EXECUTION_IN_PROGRESS"})
    assert view.counts() == {"EXECUTION_COMPLETED": 1, "EXECUTION_PAUSED": 1, "EXECUTION_IN_PROGRESS": 1}
    view.catch_up({"wex-1": "EXECUTION_TERMINATED", "wex-2": "EXECUTION_COMPLETED"})
    assert view.done and "3/3 finished" in view.bar.value and "1 terminated" in view.bar.value


def test_a_finished_batch_is_final_from_the_start() -> None:
    view = BatchView("bat-1", ids(2), {"wex-0": "EXECUTION_COMPLETED", "wex-1": "EXECUTION_CANCELLED"})
    assert view.done and "2/2 finished" in view.html
    bundle = view._repr_mimebundle_()
    assert bundle[WIDGET_MIME]["model_id"] == view.bar.model_id
    assert "2/2 finished" in bundle["text/html"] and bundle["text/plain"] == "<BatchView bat-1 2/2 finished>"


@pytest.mark.integration
def test_the_bar_of_a_real_batch_reaches_its_total(lab: Lab, sent: Sent) -> None:
    inputs = [{"fail": False}] * 5 + [{"fail": True}]
    batch = lab.map(MAYBE_FAILS, inputs, tags=["view-test"])
    view = batch_view_for(batch)
    assert batch_view_for(batch) is view  # one view per batch
    started = time.monotonic()
    batch.wait(60)
    assert_eventually(lambda: view.done, 10)
    assert (
        "6/6 finished" in view.bar.value and "5 completed" in view.bar.value and "1 failed" in view.bar.value
    )
    assert view.counts() == {"EXECUTION_COMPLETED": 5, "EXECUTION_FAILED": 1}
    assert ">view-test<" in view.bar.value
    assert view.messages <= 4 * (time.monotonic() - started) + 4
    assert len(sent.updates({view.bar.model_id})) == view.messages
    # The static rendering (no kernel, or a saved notebook) reads the same from the history.
    static = batch_html(batch)
    assert "6/6 finished" in static and "5 completed" in static and "1 failed" in static
