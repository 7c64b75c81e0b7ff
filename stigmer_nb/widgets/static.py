"""Static renderings: what a saved notebook shows, and what the live view falls back to."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .render import PHASE_COLOURS, STATUS_ICONS, render_execution

if TYPE_CHECKING:
    from ..lab import Execution
    from ..service import ExecutionSnapshot

__all__ = ["PHASE_COLOURS", "STATUS_ICONS", "execution_bundle", "execution_html"]


def execution_html(
    snapshot: ExecutionSnapshot,
    now: datetime | None = None,
    *,
    prompts: Mapping[str, Any] | None = None,
    graph: str | None = None,
) -> str:
    """A self-contained HTML summary of one execution: phase (and "waiting for approval: <task>"
    while an approval task waits, with its prompt when ``prompts`` has it), the task table, the
    task timeline, output or error, input. It has no buttons, so it carries no CSS for them: a
    copy kept in a notebook never hides the buttons of a live view of the same execution.
    ``graph``: the SVG of the workflow graph in this state, kept as a picture below the tasks."""
    state = render_execution(snapshot, now or datetime.now(UTC), prompts=prompts, controls=False, panel=None)
    picture = f"<div class='stigmer-graph-static' style='overflow:auto;max-height:480px'>{graph}</div>"
    return (
        f"<div class='stigmer-execution'>{state.status}{state.approval}{state.body}"
        f"{picture if graph else ''}{state.inputs}</div>"
    )


def execution_bundle(execution: Execution) -> dict[str, Any]:
    """MIME bundle for an ``Execution`` (HTML plus a plain-text line)."""
    snapshot = execution.lab.service.snapshot(execution.id)
    rec = snapshot.record
    text = f"<Execution {rec.id} {rec.workflow_name} {rec.phase.name}>"
    return {"text/plain": text, "text/html": execution_html(snapshot)}
