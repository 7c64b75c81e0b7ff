"""Static renderings: what a saved notebook shows, and what the live view falls back to."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .render import PHASE_COLOURS, STATUS_ICONS, render_execution

if TYPE_CHECKING:
    from ..lab import Execution, Lab
    from ..service import ExecutionSnapshot

__all__ = ["PHASE_COLOURS", "STATUS_ICONS", "execution_bundle", "execution_html", "temporal_ui_link"]


def execution_html(snapshot: ExecutionSnapshot, now: datetime | None = None) -> str:
    """A self-contained HTML summary of one execution: phase, tasks, output or error, input."""
    state = render_execution(snapshot, now or datetime.now(UTC))
    return f"<div class='stigmer-execution'>{state.status}{state.body}{state.inputs}</div>"


def execution_bundle(execution: Execution) -> dict[str, Any]:
    """MIME bundle for an ``Execution`` (HTML plus a plain-text line)."""
    snapshot = execution.lab.service.snapshot(execution.id)
    rec = snapshot.record
    text = f"<Execution {rec.id} {rec.workflow_name} {rec.phase.name}>"
    return {"text/plain": text, "text/html": execution_html(snapshot)}


class _Link:
    def __init__(self, url: str, label: str) -> None:
        self.url = url
        self.label = label

    def __repr__(self) -> str:
        return self.url

    def _repr_html_(self) -> str:
        return f"<a href='{html.escape(self.url)}' target='_blank'>{html.escape(self.label)}</a>"


def temporal_ui_link(lab: Lab) -> _Link:
    """A link to the lab's Temporal Web UI."""
    if lab.server is None or lab.server.ui_url is None:
        target = lab.settings.temporal_host_port or "the server"
        return _Link("", f"no embedded UI (Temporal at {target}; start with ui=True)")
    base = lab.server.ui_url + (lab.settings.ui_public_path or "")
    return _Link(f"{base}/namespaces/{lab.settings.namespace}/workflows", "Temporal Web UI")
