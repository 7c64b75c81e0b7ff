"""Stigmer WorkflowSpecs (protojson) run through the lab: converted by the runner, every kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stigmer_nb.lab import Lab

from ..conftest import assert_eventually

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parents[1] / "golden" / "converter"


def spec(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.spec.json").read_text())


@pytest.mark.parametrize(
    ("name", "data", "output"),
    [
        ("set", {"name": "ada"}, {"loud": "HELLO"}),
        ("switch", {"amount": 5000}, {"decision": "review"}),
        ("switch", {"amount": 5}, {"decision": "approved"}),
        ("for", {"orders": [{"id": "a"}, {"id": "b"}]}, {"seen": 2}),
    ],
)
def test_control_flow_specs(lab: Lab, name: str, data: Any, output: Any) -> None:
    execution = lab.run(spec(name), input=data).wait(60)
    assert execution.phase == "EXECUTION_COMPLETED", execution.error
    assert execution.output == output
    stored = lab.service.get_workflow(execution.record.workflow_id)
    assert stored.spec == spec(name)  # the WorkflowSpec is kept; the runner converts it at run time


def test_call_activity_and_agent_call_reach_registered_callables(lab: Lab) -> None:
    calls: list[Any] = []
    lab.register_function("score_lead", lambda email, weight: calls.append(email) or {"score": 10 * weight})
    lab.register_function("send_digest", lambda: {"sent": True})
    lab.register_agent("code-reviewer", lambda message, env: {"review": message, "env": sorted(env)})
    lab.register_agent("summariser", lambda message: f"summary of: {message}")
    first = lab.run(spec("call_activity"), input={"email": "a@b.c"}).wait(60)
    assert first.phase == "EXECUTION_COMPLETED", first.error
    assert calls == ["a@b.c"] and first.output == {"sent": True}
    second = lab.run(spec("agent_call"), input={"pr": 7}, runtime_env={
        "GITHUB_TOKEN": {"value": "gh-secret", "is_secret": True}}).wait(60)  # fmt: skip
    assert second.phase == "EXECUTION_COMPLETED", second.error
    assert second.output == "summary of: Summarise the review"
    review = second.tasks.set_index("name").loc["review", "output"]
    assert review == {"review": "Review PR #7", "env": ["GITHUB_TOKEN", "PR_NUMBER"]}


def test_agent_call_without_a_registered_agent_fails_clearly(lab: Lab) -> None:
    execution = lab.run(spec("agent_call"), input={"pr": 1}).wait(60)
    assert execution.phase == "EXECUTION_FAILED"
    assert "lab.register_agent('code-reviewer'" in execution.error["detail"]


def test_listen_spec_waits_for_signals_as_events(lab: Lab) -> None:
    execution = lab.run(spec("listen"))

    def listening(task_name: str) -> bool:
        return any(t.name == task_name for t in lab.service.snapshot(execution.id).tasks)

    # Signals become events; each listen only counts events that arrive once it is listening.
    for task_name, event_types in (
        ("approval", ["approval_signal"]),
        ("bothReviews", ["review.legal", "review.security"]),
        ("eitherAnswer", ["answer.no"]),
    ):
        assert_eventually(lambda n=task_name: listening(n), 30)
        for event_type in event_types:
            assert lab.send_event({"type": event_type, "data": {"t": event_type}}) >= 1
    assert execution.wait(60).phase == "EXECUTION_COMPLETED"
    assert execution.output == [{"t": "answer.no"}]
    both = execution.tasks.set_index("name").loc["bothReviews", "output"]
    assert both == [{"t": "review.legal"}, {"t": "review.security"}]
