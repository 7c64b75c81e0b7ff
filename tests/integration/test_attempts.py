"""Activity retries are reported as attempts of the task run: each failed attempt, then the next."""

from __future__ import annotations

import json
from itertools import count

import pytest

from stigmer_nb.lab import Lab

from ..httpserver import LoopbackServer, Recorded, Reply

pytestmark = pytest.mark.integration

DOC = """
document: {dsl: '1.0.0', namespace: tests, name: flaky-call, version: '1.0.0'}
do:
  - fetch:
      call: http
      with:
        method: get
        endpoint: ${ $workflow.input.url }
"""


def _flaky(failures: int) -> LoopbackServer:
    calls = count(1)

    def answer(_: Recorded) -> Reply:
        n = next(calls)
        return Reply(status=503, body={"busy": n}) if n <= failures else Reply(body={"ok": n})

    server = LoopbackServer()
    server.route("GET", "/flaky", answer)
    server.route("GET", "/missing", Reply(status=404, body={"no": True}))
    return server


def test_a_call_that_succeeds_on_its_third_attempt_reports_each_attempt(lab: Lab) -> None:
    with _flaky(2) as server:
        execution = lab.run(DOC, input={"url": server.url("/flaky")}).wait(60)
        assert execution.phase == "EXECUTION_COMPLETED", execution.record.error
        assert execution.output == {"ok": 3}
        assert len(server.requests) == 3
    task = execution.tasks.iloc[0]
    assert task["status"] == "WORKFLOW_TASK_COMPLETED"
    assert task["attempt"] == 3
    updates = execution.updates
    rows = updates[updates["name"] == "fetch"]
    assert list(zip(rows["status"], rows["attempt"], strict=True)) == [
        ("WORKFLOW_TASK_IN_PROGRESS", 1),
        ("WORKFLOW_TASK_IN_PROGRESS", 2),
        ("WORKFLOW_TASK_IN_PROGRESS", 3),
        ("WORKFLOW_TASK_COMPLETED", 3),
    ]
    retried = [e if isinstance(e, dict) else json.loads(e) for e in rows["error"].iloc[1:3]]
    assert [e["status"] for e in retried] == [503, 503]
    assert len(set(rows["task_id"])) == 1  # one task run, three attempts


def test_attempts_end_at_the_limit_and_a_non_retryable_error_is_not_retried(lab: Lab) -> None:
    with _flaky(10) as server:
        execution = lab.run(DOC, input={"url": server.url("/flaky")}).wait(60)
        assert execution.phase == "EXECUTION_FAILED"
        assert execution.record.error["status"] == 503
        assert len(server.requests) == 3
        assert execution.tasks.iloc[0]["attempt"] == 3
        missing = lab.run(DOC, input={"url": server.url("/missing")}).wait(60)
        assert missing.phase == "EXECUTION_FAILED"
        assert missing.tasks.iloc[0]["attempt"] == 1
        assert len(server.requests) == 4
