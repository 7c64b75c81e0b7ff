"""Static renderings: what a saved notebook shows, and what the live view falls back to."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..lab import Execution, Lab
    from ..service import ExecutionSnapshot

__all__ = ["PHASE_COLOURS", "STATUS_ICONS", "execution_bundle", "execution_html", "temporal_ui_link"]

PHASE_COLOURS = {
    "EXECUTION_PENDING": "#6b7280",
    "EXECUTION_IN_PROGRESS": "#2563eb",
    "EXECUTION_COMPLETED": "#16a34a",
    "EXECUTION_FAILED": "#dc2626",
    "EXECUTION_CANCELLED": "#d97706",
}
STATUS_ICONS = {
    "WORKFLOW_TASK_PENDING": "○",
    "WORKFLOW_TASK_IN_PROGRESS": "◐",
    "WORKFLOW_TASK_COMPLETED": "✔",
    "WORKFLOW_TASK_FAILED": "✖",
    "WORKFLOW_TASK_SKIPPED": "↷",
}


def _short(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "\n…"


def execution_html(snapshot: ExecutionSnapshot) -> str:
    """A self-contained HTML summary of one execution: phase, tasks, output or error."""
    rec = snapshot.record
    phase = rec.phase.name
    colour = PHASE_COLOURS.get(phase, "#6b7280")
    done = sum(1 for t in snapshot.tasks if t.completed_at is not None)
    rows = []
    for task in snapshot.tasks:
        icon = STATUS_ICONS.get(task.status, "?")
        duration = f"{task.duration_ms:.0f} ms" if task.duration_ms is not None else ""
        err = html.escape((task.error or {}).get("detail") or (task.error or {}).get("title") or "")
        rows.append(
            f"<tr><td style='padding-left:{8 + 16 * task.depth}px'>{icon} {html.escape(task.name)}</td>"
            f"<td>{html.escape(task.kind)}</td><td>{html.escape(task.status.removeprefix('WORKFLOW_TASK_'))}</td>"
            f"<td>{duration}</td><td>{err}</td></tr>"
        )
    elapsed = ""
    if rec.started_at and rec.completed_at:
        elapsed = f" · {(rec.completed_at - rec.started_at).total_seconds():.2f}s"
    body = [
        "<div class='stigmer-execution' style='font-family:sans-serif;font-size:13px'>",
        f"<b>{html.escape(rec.workflow_name)}</b> <code>{rec.id}</code> ",
        f"<span style='background:{colour};color:white;border-radius:4px;padding:1px 6px'>"
        f"{phase.removeprefix('EXECUTION_')}</span>",
        f"<span style='color:#6b7280'> {done}/{len(snapshot.tasks)} tasks{elapsed}</span>",
    ]
    if rows:
        body.append(
            "<table style='margin-top:4px'><tr><th>task</th><th>kind</th><th>status</th><th>duration</th>"
            "<th>error</th></tr>" + "".join(rows) + "</table>"
        )
    if rec.error:
        body.append(f"<pre style='color:#dc2626'>{html.escape(_short(rec.error))}</pre>")
    elif rec.phase.name == "EXECUTION_COMPLETED":
        body.append(
            f"<details><summary>output</summary><pre>{html.escape(_short(rec.output))}</pre></details>"
        )
    body.append("</div>")
    return "".join(body)


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
