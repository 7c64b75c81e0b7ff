"""Schedules: a document's ``schedule`` started by the lab, listed, triggered and removed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from stigmer_nb.errors import InvalidInputError, NotFoundError
from stigmer_nb.lab import Lab

from ..conftest import assert_eventually

pytestmark = pytest.mark.integration


def _doc(name: str, schedule: str) -> str:
    return f"""
document: {{dsl: '1.0.0', namespace: tests, name: {name}, version: '1.0.0'}}
schedule: {schedule}
do:
  - stamp:
      set: {{tick: '${{ $workflow.input.tag }}'}}
"""


def _runs(lab: Lab, schedule_id: str) -> list[str]:
    frame = lab.sql(
        "SELECT phase FROM workflow_executions WHERE trigger_message = ? ORDER BY created_at",
        params=[f"schedule {schedule_id}"],
    )
    return list(frame["phase"])


def test_every_runs_on_its_interval_is_listed_and_stops_when_removed(lab: Lab) -> None:
    schedule_id = lab.schedule(_doc("every-second", "{every: {seconds: 1}}"), input={"tag": "a"})
    listed = lab.schedules().set_index("schedule_id").loc[schedule_id]
    assert (listed["kind"], listed["spec"], listed["mechanism"]) == ("every", "1s", "temporal schedule")
    assert listed["next_run_at"] is not None
    assert_eventually(lambda: _runs(lab, schedule_id).count("EXECUTION_COMPLETED") >= 2, timeout=30)
    assert lab.schedules().set_index("schedule_id").loc[schedule_id, "runs"] >= 2
    lab.unschedule(schedule_id)
    assert schedule_id not in set(lab.schedules()["schedule_id"])
    time.sleep(1.2)  # whatever had started finishes; nothing starts after the removal
    settled = len(_runs(lab, schedule_id))
    time.sleep(1.5)
    assert len(_runs(lab, schedule_id)) == settled
    outputs = lab.sql(
        "SELECT output FROM workflow_executions WHERE trigger_message = ? AND phase = 'EXECUTION_COMPLETED'",
        params=[f"schedule {schedule_id}"],
    )
    assert all(o == {"tick": "a"} or o == '{"tick":"a"}' for o in outputs["output"])
    with pytest.raises(NotFoundError):
        lab.unschedule(schedule_id)


def test_cron_is_a_temporal_schedule_that_can_be_triggered_now(lab: Lab) -> None:
    schedule_id = lab.schedule(_doc("nightly", "{cron: '0 3 * * *'}"), input={"tag": "n"})
    row = lab.schedules().set_index("schedule_id").loc[schedule_id]
    assert (row["kind"], row["spec"]) == ("cron", "0 3 * * *")
    assert row["next_run_at"].hour == 3
    lab.trigger_schedule(schedule_id)
    assert_eventually(lambda: _runs(lab, schedule_id) == ["EXECUTION_COMPLETED"], timeout=30)
    # Scheduling the same workflow again replaces its schedule.
    again = lab.schedule(_doc("nightly", "{cron: '30 4 * * *'}"), input={"tag": "n"})
    assert again == schedule_id
    assert lab.schedules().set_index("schedule_id").loc[schedule_id, "spec"] == "30 4 * * *"
    lab.unschedule(schedule_id)


def test_after_waits_for_each_run_and_skips_ahead_under_time_skipping(
    lab_factory: Callable[..., Lab],
) -> None:
    lab = lab_factory(time_skipping=True)
    started = time.monotonic()
    schedule_id = lab.schedule(_doc("hourly-after", "{after: {hours: 1}}"), input={"tag": "h"})
    assert_eventually(lambda: _runs(lab, schedule_id).count("EXECUTION_COMPLETED") >= 3, timeout=60)
    assert time.monotonic() - started < 60  # three hours of waiting, skipped
    row = lab.schedules().set_index("schedule_id").loc[schedule_id]
    assert (row["kind"], row["spec"], row["mechanism"]) == ("after", "3600s", "workflow")
    lab.unschedule(schedule_id)
    assert schedule_id not in set(lab.schedules()["schedule_id"])


def test_documents_without_a_usable_schedule_are_refused(lab: Lab) -> None:
    with pytest.raises(InvalidInputError, match="no `schedule`"):
        lab.schedule(_doc("plain", "null").replace("schedule: null\n", ""))
    with pytest.raises(InvalidInputError, match="does not support `until`"):
        lab.schedule(_doc("on-until", "{on: {any: [], until: '${ true }'}}"))
    with pytest.raises(InvalidInputError, match="does not support `correlate`"):
        lab.schedule(_doc("on-correlate", "{on: {one: {with: {type: x}, correlate: {k: {from: .id}}}}}"))
    with pytest.raises(InvalidInputError, match="refused"):
        lab.schedule(_doc("bad-cron", "{cron: 'every blue moon'}"))
    with pytest.raises(InvalidInputError, match="not JSON"):
        lab.schedule(_doc("bad-input", "{every: {hours: 1}}"), input={"when": object()})
    with pytest.raises(InvalidInputError, match="at least 1 second"):
        lab.schedule(_doc("too-fast", "{every: {milliseconds: 100}}"))
    assert lab.schedules().empty


ON_EVENTS = """
document: {dsl: '1.0.0', namespace: tests, name: on-paid-and-shipped, version: '1.0.0'}
schedule:
  on:
    all:
      - with: {type: order.paid}
      - with: {type: order.shipped}
do:
  - summarise:
      set: {types: '${ [$workflow.input[].type] }', order: '${ $workflow.input[0].data.order }'}
"""


def test_on_starts_a_run_each_time_its_events_have_come_with_them_as_input(lab: Lab) -> None:
    schedule_id = lab.schedule(ON_EVENTS)
    row = lab.schedules().set_index("schedule_id").loc[schedule_id]
    assert (row["kind"], row["spec"], row["mechanism"]) == (
        "on",
        "all: order.paid, order.shipped",
        "workflow",
    )
    for event in (
        {"type": "order.paid", "data": {"order": 1}},
        {"type": "order.noise", "data": {}},
        {"type": "order.shipped", "data": {"order": 1}},
        {"type": "order.shipped", "data": {"order": 2}},
    ):
        assert lab.send_event(event) >= 1
    assert_eventually(lambda: _runs(lab, schedule_id) == ["EXECUTION_COMPLETED"], timeout=30)
    lab.send_event({"type": "order.paid", "data": {"order": 2}})  # with the shipped one left over
    assert_eventually(lambda: _runs(lab, schedule_id) == ["EXECUTION_COMPLETED"] * 2, timeout=30)
    outputs = lab.sql(
        "SELECT output FROM workflow_executions WHERE trigger_message = ? ORDER BY created_at",
        params=[f"schedule {schedule_id}"],
    )["output"]
    decoded = [o if isinstance(o, dict) else json.loads(o) for o in outputs]
    assert decoded == [
        {"types": ["order.paid", "order.shipped"], "order": 1},
        {"types": ["order.shipped", "order.paid"], "order": 2},
    ]
    lab.unschedule(schedule_id)
