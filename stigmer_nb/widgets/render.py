"""Pure HTML rendering of an execution snapshot, shared by the live view and the static fallback."""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .panels import PANELS, graph_panel_html, node_options
from .style import ERROR, MUTED, PHASE_COLOURS, STATUS_COLOURS, TRACK, WAITING, ink, json_html
from .timeline import format_elapsed, render_timeline

if TYPE_CHECKING:
    from ..model import ExecutionRecord
    from ..service import ExecutionSnapshot, TaskState

__all__ = [
    "ACTIONS",
    "APPROVAL_KIND",
    "MAX_ROWS",
    "PANELS",
    "PHASE_COLOURS",
    "STATUS_COLOURS",
    "STATUS_ICONS",
    "ViewState",
    "available_actions",
    "control_selector",
    "format_elapsed",
    "pending_approvals",
    "render_execution",
    "view_class",
]

STATUS_ICONS = {
    "WORKFLOW_TASK_PENDING": "○",
    "WORKFLOW_TASK_IN_PROGRESS": "◐",
    "WORKFLOW_TASK_COMPLETED": "✔",
    "WORKFLOW_TASK_FAILED": "✖",
    "WORKFLOW_TASK_SKIPPED": "↷",
}
_FINISHED_TASK = {"WORKFLOW_TASK_COMPLETED", "WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_SKIPPED"}
ACTIONS = ("pause", "resume", "cancel", "terminate", "rerun", "recover")
"""The steering buttons of a view, in the order shown; each has the CSS class ``stigmer-<action>``."""
APPROVAL_KIND = "listen:approval"
"""Task kind of an approval task (a ``listen`` for one ``ai.stigmer.approval`` event)."""
_DECISIONS = ("approve", "reject")
_RUNNING = ("pause", "cancel", "terminate")
_PAUSED = ("resume", "cancel", "terminate")
_NOTES = {
    "cancel": ("cancelling…", "EXECUTION_CANCELLED"),
    "pause": ("pausing…", "EXECUTION_PAUSED"),
    "resume": ("resuming…", "EXECUTION_IN_PROGRESS"),
    "terminate": ("terminating…", "EXECUTION_TERMINATED"),
    "approve": ("approving…", "EXECUTION_COMPLETED"),
    "reject": ("rejecting…", "EXECUTION_FAILED"),
}
MAX_ROWS = 100
"""Task rows shown at most; a long for-loop would otherwise make every update megabytes."""


@dataclass(frozen=True)
class ViewState:
    """What a view shows for one snapshot at one moment: the widget values and a few facts."""

    status: str
    """Header HTML: workflow, id, phase badge, elapsed time (changes while it runs)."""
    body: str
    """Progress, task table, and at the end the output or the problem details."""
    inputs: str
    """The input as collapsible JSON (never changes)."""
    phase: str
    terminal: bool
    finished: int
    known: int
    elapsed: float | None
    actions: tuple[str, ...] = ()
    """The steering buttons shown (``ACTIONS`` the phase allows and the view can do)."""
    approvals: tuple[tuple[str, str], ...] = ()
    """Approval tasks waiting for a decision: (task id, task name), oldest first."""
    approval: str = ""
    """HTML of the approval request the panel answers (task name and prompt); "" when none waits."""
    panel: str | None = "tasks"
    """What the body shows below the progress bar (one of ``PANELS``; None: tasks and timeline)."""
    nodes: tuple[tuple[str, str], ...] = ()
    """Choices of the node selector (label, task reference), while the graph panel is shown."""


def view_class(execution_id: str) -> str:
    """CSS class of the box showing ``execution_id`` (lets its status hide or show its buttons)."""
    return f"stigmer-view-{execution_id}"


def available_actions(record: ExecutionRecord) -> tuple[str, ...]:
    """The steering actions that make sense in ``record``'s phase, in ``ACTIONS`` order.

    Running (pending or in progress): pause, cancel, terminate. Paused: resume, cancel,
    terminate. Failed: re-run, and recover when the failure left a checkpoint. Any other end:
    re-run.
    """
    phase = record.phase.name
    if phase in ("EXECUTION_PENDING", "EXECUTION_IN_PROGRESS"):
        return _RUNNING
    if phase == "EXECUTION_PAUSED":
        return _PAUSED
    if phase == "EXECUTION_FAILED":
        return ("rerun", "recover") if record.checkpoint else ("rerun",)
    if record.phase.terminal:
        return ("rerun",)
    return ()


def pending_approvals(snapshot: ExecutionSnapshot) -> tuple[tuple[str, str], ...]:
    """(task id, name) of each approval task in progress, in start order; () once it has ended."""
    if snapshot.record.phase.terminal:
        return ()
    return tuple(
        (t.task_id, t.name)
        for t in snapshot.tasks
        if t.kind == APPROVAL_KIND and t.status == "WORKFLOW_TASK_IN_PROGRESS"
    )


def _elapsed(snapshot: ExecutionSnapshot, now: datetime) -> float | None:
    rec = snapshot.record
    start = rec.started_at or rec.created_at
    if start is None:
        return None
    end = rec.completed_at if rec.phase.terminal and rec.completed_at else None
    if end is None and rec.phase.terminal:
        end = rec.updated_at or now
    return ((end or now) - start).total_seconds()


def _badge(phase: str) -> str:
    colour = PHASE_COLOURS.get(phase, "#6b7280")
    return (
        f"<span class='stigmer-phase' data-phase='{phase}' style='background:{colour};color:white;"
        f"border-radius:4px;padding:1px 7px;font-weight:600'>{phase.removeprefix('EXECUTION_')}</span>"
    )


def _error_text(error: dict[str, Any] | None) -> str:
    error = error or {}
    return str(error.get("title") or error.get("detail") or error.get("type") or "error")


def _shown_tasks(tasks: tuple[TaskState, ...]) -> tuple[list[TaskState], int]:
    """At most MAX_ROWS rows: every unfinished or failed task, then the most recent others."""
    if len(tasks) <= MAX_ROWS:
        return list(tasks), 0
    keep = {id(t) for t in tasks if t.status not in _FINISHED_TASK or t.status == "WORKFLOW_TASK_FAILED"}
    for task in reversed(tasks):
        if len(keep) >= MAX_ROWS:
            break
        keep.add(id(task))
    shown = [t for t in tasks if id(t) in keep][-MAX_ROWS:]
    return shown, len(tasks) - len(shown)


def _task_rows(tasks: tuple[TaskState, ...]) -> str:
    shown, hidden = _shown_tasks(tasks)
    rows = []
    for task in shown:
        icon = STATUS_ICONS.get(task.status, "?")
        colour = STATUS_COLOURS.get(task.status, "#6b7280")
        status = task.status.removeprefix("WORKFLOW_TASK_")
        duration = f"{task.duration_ms:,.0f} ms" if task.duration_ms is not None else ""
        attempt = f" <span style='{MUTED}'>attempt {task.attempt}</span>" if task.attempt > 1 else ""
        error = ""
        if task.error:
            error = (
                f"<details><summary style='{ink(ERROR)};cursor:pointer'>{html.escape(_error_text(task.error))}"
                f"</summary><pre style='margin:2px 0;white-space:pre-wrap'>{json_html(task.error)}</pre></details>"
            )
        rows.append(
            f"<tr data-status='{status}'>"
            f"<td style='padding:1px 8px 1px {6 + 16 * task.depth}px;white-space:nowrap'>"
            f"<span style='color:{colour}'>{icon}</span> {html.escape(task.name)}</td>"
            f"<td style='padding:1px 8px;{MUTED}'>{html.escape(task.kind)}</td>"
            f"<td style='padding:1px 8px;{ink(colour)}'>{status}{attempt}</td>"
            f"<td style='padding:1px 8px;text-align:right;white-space:nowrap'>{duration}</td>"
            f"<td style='padding:1px 8px'>{error}</td></tr>"
        )
    more = ""
    if hidden:
        more = (
            f"<tr><td colspan='5' style='padding:1px 8px;{MUTED}'>… {hidden:,} earlier tasks not shown "
            "(execution.tasks has every one)</td></tr>"
        )
    head = "".join(
        f"<th style='text-align:left;padding:1px 8px;font-weight:600'>{h}</th>"
        for h in ("task", "kind", "status", "duration", "error")
    )
    return (
        "<table class='stigmer-tasks' style='border-collapse:collapse;margin-top:4px'>"
        f"<thead><tr>{head}</tr></thead><tbody>{more}{''.join(rows)}</tbody></table>"
    )


def _problem(error: dict[str, Any]) -> str:
    title = html.escape(str(error.get("title") or "Execution failed"))
    detail = html.escape(str(error.get("detail") or ""))
    where = error.get("instance")
    status = error.get("status")
    facts = " · ".join(
        html.escape(str(x))
        for x in (status, error.get("type", "").rsplit("/", 1)[-1] if error.get("type") else None, where)
        if x
    )
    return (
        f"<div class='stigmer-problem' style='border-left:3px solid {ERROR};padding:2px 8px;margin-top:6px'>"
        f"<b style='{ink(ERROR)}'>{title}</b>"
        + (f"<div>{detail}</div>" if detail else "")
        + (f"<div style='{MUTED}'>{facts}</div>" if facts else "")
        + "<details><summary style='cursor:pointer'>problem details</summary>"
        f"<pre style='margin:2px 0;white-space:pre-wrap'>{json_html(error)}</pre></details></div>"
    )


def _prompt_html(prompt: Any) -> str:
    if isinstance(prompt, str):
        return html.escape(prompt)
    return f"<code>{json_html(prompt, 500)}</code>"


def _approval_html(approvals: tuple[tuple[str, str], ...], prompts: Mapping[str, Any] | None) -> str:
    """The request the approval panel answers: the oldest waiting task, its prompt once known."""
    if not approvals:
        return ""
    task_id, name = approvals[0]
    prompt = (prompts or {}).get(task_id)
    text = f": {_prompt_html(prompt)}" if prompt not in (None, "") else ""
    more = (
        f" <span style='{MUTED}'>({len(approvals) - 1} more waiting after this one)</span>"
        if len(approvals) > 1
        else ""
    )
    return (
        "<div class='stigmer-approval-request' style='font-family:var(--jp-ui-font-family,sans-serif);"
        f"font-size:13px;border-left:3px solid {WAITING};padding:2px 8px;margin:4px 0'>"
        f"<b style='{ink(WAITING)}'>approval</b> <b>{html.escape(name)}</b>{text}{more}</div>"
    )


def _controls_style(
    scope: str,
    shown: tuple[str, ...],
    approvals: bool,
    decisions: Collection[str],
    busy: str | None,
) -> str:
    """CSS that shows only this view's buttons for the phase: visibility rides along with the
    status update instead of costing messages of its own. Selectors name the view's own children
    (``>``): a view of a re-run displayed inside this one keeps its buttons."""
    hide = [control_selector(scope, a) for a in ACTIONS if a not in shown]
    if not approvals or not decisions:
        hide.append(control_selector(scope, "approval"))
    hide += [control_selector(scope, d) for d in _DECISIONS if d not in decisions]
    rules = [f"{sel}{{display:none !important}}" for sel in hide]
    if busy in _DECISIONS:
        rules.append(f"{control_selector(scope, 'approval')} button{{opacity:.5;pointer-events:none}}")
    elif busy is not None:
        rules.append(f"{control_selector(scope, busy)}{{opacity:.5;pointer-events:none}}")
    return f"<style>{''.join(rules)}</style>" if rules else ""


def control_selector(scope: str, name: str) -> str:
    """CSS selector of one control of the view whose class is ``scope`` (``view_class(id)``): a
    button of the header (``ACTIONS``), the approval panel (``"approval"``) or one of its buttons,
    or the graph panel's task selector (``"node"``)."""
    if name == "approval":
        return f".{scope} > .stigmer-approval"
    if name == "node":
        return f".{scope} > .stigmer-panels > .stigmer-node-select"
    if name in _DECISIONS:
        return f".{scope} > .stigmer-approval .stigmer-{name}"
    return f".{scope} > .stigmer-header > .stigmer-{name}"


def render_execution(
    snapshot: ExecutionSnapshot,
    now: datetime,
    *,
    cancel_requested: bool = False,
    requested: str | None = None,
    enabled: Collection[str] | None = None,
    prompts: Mapping[str, Any] | None = None,
    notice: str = "",
    controls: bool = True,
    panel: str | None = "tasks",
    selected: str = "",
    graph_svg: str | None = None,
    graph_pending: bool = False,
) -> ViewState:
    """Everything a view shows for ``snapshot`` at ``now`` (a pure function: no widgets, no I/O).

    ``requested``: the steering action asked for and not yet visible in the phase (``"pause"``,
    ``"cancel"``, ``"approve"`` …; ``cancel_requested`` is ``requested="cancel"``), shown as a note
    with its button greyed. ``enabled``: the actions (``ACTIONS`` plus ``"approve"`` and
    ``"reject"``) the view can perform, all when None. ``prompts``: approval prompts by task id.
    ``notice``: one line (a failed action) shown in the header. ``controls``: False for static
    HTML, which has no buttons to show or hide.

    ``panel``: what the body shows below the progress bar, one of ``PANELS``: the task table, the
    timeline, or the graph panel (``graph_svg`` when there is one, "drawing…" while
    ``graph_pending``, and the details of the latest run of the task reference ``selected``, the
    latest task when ""). None (static HTML): the task table and the timeline.
    """
    if panel is not None and panel not in PANELS:
        raise ValueError(f"panel must be one of {PANELS} or None, not {panel!r}")
    rec = snapshot.record
    phase = rec.phase.name
    terminal = rec.phase.terminal
    tasks = snapshot.tasks
    finished = sum(1 for t in tasks if t.status in _FINISHED_TASK)
    known = len(tasks)
    elapsed = _elapsed(snapshot, now)
    running = not terminal
    label = "queued" if phase == "EXECUTION_PENDING" else "elapsed"
    clock = format_elapsed(elapsed, running=running)
    if rec.time_skipping and phase != "EXECUTION_PENDING":
        # Its clock jumps over idle waits: say so rather than tick wall seconds against it.
        label = "workflow time"
        clock = format_elapsed(elapsed, running=False) if terminal else "⏩ skipping idle time"
    requested = "cancel" if cancel_requested and requested is None else requested
    busy = None if terminal else requested
    approvals = pending_approvals(snapshot)
    allowed = set(ACTIONS + _DECISIONS) if enabled is None else set(enabled)
    actions = tuple(a for a in available_actions(rec) if a in allowed)
    note = ""
    if busy in _NOTES:
        text, tint = _NOTES[busy]
        note = f" <span class='stigmer-note' style='{ink(PHASE_COLOURS[tint])}'>{text}</span>"
    elif approvals:
        names = ", ".join(html.escape(n) for _, n in approvals)
        note = f" <span class='stigmer-waiting' style='{ink(WAITING)}'>waiting for approval: {names}</span>"
    if notice:
        note += f" <span class='stigmer-notice' style='{ink(ERROR)}'>{html.escape(notice)}</span>"
    style = ""
    if controls:
        # Shows only the buttons this phase allows, without a message of its own (the header
        # changes with the phase anyway).
        decisions = [d for d in _DECISIONS if d in allowed]
        style = _controls_style(view_class(rec.id), actions, bool(approvals), decisions, busy)
    status = (
        "<div class='stigmer-status' style='font-family:var(--jp-ui-font-family,sans-serif);font-size:13px'>"
        f"<b>{html.escape(rec.workflow_name)}</b> <code style='{MUTED}'>{rec.id}</code> {_badge(phase)} "
        f"<span class='stigmer-elapsed' style='{MUTED}'>{label} {clock}</span>{note}{style}</div>"
    )
    colour = PHASE_COLOURS.get(phase, "#6b7280")
    share = 100.0 * finished / known if known else (100.0 if terminal else 0.0)
    progress = (
        "<div style='display:flex;align-items:center;gap:8px'>"
        f"<div style='background:{TRACK};border-radius:3px;width:220px;height:7px;overflow:hidden'>"
        f"<div style='background:{colour};width:{share:.1f}%;height:100%'></div></div>"
        f"<span class='stigmer-progress' style='{MUTED}'>{finished}/{known} tasks</span></div>"
    )
    parts = [
        "<div class='stigmer-body' style='font-family:var(--jp-ui-font-family,sans-serif);font-size:13px'>",
        progress,
    ]
    nodes: tuple[tuple[str, str], ...] = ()
    if panel in ("tasks", None) and tasks:
        parts.append(_task_rows(tasks))
    if panel == "timeline":
        parts.append(render_timeline(snapshot, now))
    elif panel is None and any(t.started_at for t in tasks):
        parts.append(f"<div style='{MUTED};margin-top:6px'>timeline</div>{render_timeline(snapshot, now)}")
    if panel == "graph":
        nodes = node_options(snapshot)
        selected = selected if selected in {ref for _, ref in nodes} else ""
        parts.append(graph_panel_html(snapshot, selected, svg=graph_svg, pending=graph_pending))
    if controls and panel != "graph":
        # The node selector belongs to the graph panel: hidden along with it, in the same message.
        parts.append(
            f"<style>{control_selector(view_class(rec.id), 'node')}{{display:none !important}}</style>"
        )
    if rec.error:
        parts.append(_problem(rec.error))
    elif phase == "EXECUTION_COMPLETED":
        text = json_html(rec.output)
        opened = " open" if text.count("\n") < 20 else ""
        parts.append(
            f"<details class='stigmer-output'{opened}><summary style='cursor:pointer'>output</summary>"
            f"<pre style='margin:2px 0'>{text}</pre></details>"
        )
    parts.append("</div>")
    inputs = ""
    if rec.input is not None:
        inputs = (
            "<details class='stigmer-input' style='font-family:var(--jp-ui-font-family,sans-serif);"
            f"font-size:13px'><summary style='cursor:pointer;{MUTED}'>input</summary>"
            f"<pre style='margin:2px 0'>{json_html(rec.input)}</pre></details>"
        )
    return ViewState(
        status=status,
        body="".join(parts),
        inputs=inputs,
        phase=phase,
        terminal=terminal,
        finished=finished,
        known=known,
        elapsed=elapsed,
        actions=actions,
        approvals=approvals,
        approval=_approval_html(approvals, prompts),
        panel=panel,
        nodes=nodes,
    )
