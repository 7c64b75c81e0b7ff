"""Effects: what the DSL workflow hands to activities, by registered name (import-light)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CALL_A2A",
    "CALL_AGENT",
    "CALL_FUNCTION",
    "CALL_GRPC",
    "CALL_HTTP",
    "CALL_MCP",
    "CALL_OPENAPI",
    "LOAD_WORKFLOW",
    "PROBLEM_ERROR_TYPE",
    "PUBLISH_EVENT",
    "RUN_SCRIPT",
    "RUN_SHELL",
    "EffectInput",
]

CALL_HTTP = "CallHTTP"
CALL_OPENAPI = "CallOpenAPI"
CALL_GRPC = "CallGRPC"
CALL_MCP = "CallMCP"
CALL_A2A = "CallA2A"
CALL_FUNCTION = "CallFunction"
CALL_AGENT = "CallAgent"
RUN_SHELL = "RunShell"
RUN_SCRIPT = "RunScript"
PUBLISH_EVENT = "PublishEvent"
LOAD_WORKFLOW = "LoadWorkflowDocument"

PROBLEM_ERROR_TYPE = "WorkflowProblem"
"""ApplicationError type whose first detail is a problem-details object."""


@dataclass(frozen=True)
class EffectInput:
    """One effect to perform: the task's evaluated arguments and where it sits in the document."""

    reference: str
    """JSON pointer of the task (becomes the problem's ``instance``)."""
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    """Evaluated ``with`` (calls), ``run.*`` spec, emitted event, or lookup keys."""
    input: Any = None
    """The task's transformed input (URI templates read its top-level keys)."""
    execution_id: str | None = None
    target: str = ""
    """Function, agent or operation name where the effect needs one."""
