"""``listen``: events that came shortly before the listen began, correlation, one listen per event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stigmer_nb.lab import Execution, Lab

from ..conftest import assert_eventually

pytestmark = pytest.mark.integration

LATE_LISTENER = """
document: {dsl: '1.0.0', namespace: tests, name: late-listener, version: '1.0.0'}
do:
  - busy:
      wait: {seconds: 1}
  - hear:
      timeout: {after: {milliseconds: 1500}}
      listen:
        to: {one: {with: {type: order.placed}}}
"""

CORRELATED = """
document: {dsl: '1.0.0', namespace: tests, name: correlated, version: '1.0.0'}
do:
  - mine:
      listen:
        to:
          one:
            with: {type: order.placed}
            correlate: {order: {from: .data.orderId, expect: '${ .orderId }'}}
  - paidAndShipped:
      listen:
        to:
          all:
            - with: {type: order.paid}
              correlate: {order: {from: .data.orderId}}
            - with: {type: order.shipped}
              correlate: {order: {from: .data.orderId}}
"""


def _running(lab: Lab, execution: Execution, task: str) -> None:
    """Wait until ``task`` has started (the workflow is running and will get events)."""
    assert_eventually(lambda: task in {t.name for t in lab.service.snapshot(execution.id).tasks}, timeout=30)


def _event(type_: str, **data: Any) -> dict[str, Any]:
    return {"type": type_, "data": data}


def test_an_event_sent_shortly_before_the_listen_began_is_heard(lab: Lab) -> None:
    execution = lab.run(LATE_LISTENER)
    _running(lab, execution, "busy")
    assert lab.send_event(_event("order.placed", orderId=7)) >= 1
    execution.wait(30)
    assert execution.phase == "EXECUTION_COMPLETED", execution.record.error
    assert execution.output == [{"orderId": 7}]


def test_with_no_window_only_events_sent_while_listening_count(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(event_window=0.001)
    execution = lab.run(LATE_LISTENER)
    _running(lab, execution, "busy")
    lab.send_event(_event("order.placed", orderId=7))
    execution.wait(30)
    assert execution.phase == "EXECUTION_FAILED"
    assert "did not finish within" in execution.record.error["detail"]


def test_correlation_by_expected_value_and_by_the_first_event_consumed(lab: Lab) -> None:
    execution = lab.run(CORRELATED, input={"orderId": 2})
    _running(lab, execution, "mine")
    for event in (
        _event("order.placed", orderId=1),  # another order: not this execution's
        _event("order.placed", orderId=2),
        _event("order.paid", orderId=5),  # fixes the correlation of the `all` listen to order 5
        _event("order.shipped", orderId=9),  # does not correlate with 5
        _event("order.shipped", orderId=5),
    ):
        lab.send_event(event)
    execution.wait(30)
    assert execution.phase == "EXECUTION_COMPLETED", execution.record.error
    assert execution.output == [{"orderId": 5}, {"orderId": 5}]
    placed = execution.tasks.set_index("name").loc["mine", "output"]
    assert placed == [{"orderId": 2}]


def test_an_event_is_consumed_by_one_listen_only(lab: Lab) -> None:
    doc = """
document: {dsl: '1.0.0', namespace: tests, name: two-listens, version: '1.0.0'}
do:
  - first:
      listen: {to: {one: {with: {type: ping}}}}
  - second:
      listen: {to: {one: {with: {type: ping}}}}
"""
    execution = lab.run(doc)
    _running(lab, execution, "first")
    lab.send_event(_event("ping", n=1))
    _running(lab, execution, "second")
    lab.send_event(_event("ping", n=2))
    execution.wait(30)
    assert execution.output == [{"n": 2}]
