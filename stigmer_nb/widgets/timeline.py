"""The task timeline as HTML: one bar per task run, cheap enough to redraw a few times a second.

A pure function of a snapshot and a moment, shared by the live view (its Timeline panel, part of
the body update) and the static HTML a saved notebook keeps. Bars are plain ``<div>``s placed with
percentages (no script, no image, nothing measured), so any width works and a sanitiser that keeps
inline styles keeps the chart.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from .style import BORDER, MUTED, STATUS_COLOURS, TRACK, WAITING, ink

if TYPE_CHECKING:
    from ..service import ExecutionSnapshot, TaskState

__all__ = ["MAX_TIMELINE_ROWS", "format_elapsed", "render_timeline", "tree_order"]

MAX_TIMELINE_ROWS = 80
"""Task runs drawn at most: every unfinished or failed one, then the most recent others."""
_FINISHED = {"WORKFLOW_TASK_COMPLETED", "WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_SKIPPED"}
_TICKS = 4
_GRID = (
    "display:grid;grid-template-columns:minmax(90px,200px) minmax(120px,1fr) 84px;grid-auto-rows:16px;"
    "column-gap:6px;align-items:center;white-space:nowrap;font-variant-numeric:tabular-nums"
)
"""Three columns (task, bar, duration); every row is three cells, so a row costs no wrapper."""


def format_elapsed(seconds: float | None, *, running: bool) -> str:
    """``0.42s``, ``12.3s``, ``4m 05s``, ``2h 03m``; whole seconds while running so it ticks evenly."""
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        if running:
            return f"{math.floor(seconds)}s"
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    whole = math.floor(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {(whole % 3600) // 60:02d}m"


def tree_order(tasks: tuple[TaskState, ...] | list[TaskState]) -> list[TaskState]:
    """``tasks`` with each run's children right below it (in start order), so the branches of a
    ``fork`` or the iterations of a ``for`` stay together under their parent."""
    ids = {t.task_id for t in tasks}
    children: defaultdict[str | None, list[TaskState]] = defaultdict(list)
    for t in tasks:
        children[t.parent_id if t.parent_id in ids else None].append(t)
    ordered: list[TaskState] = []
    stack = list(reversed(children[None]))
    while stack:
        t = stack.pop()
        ordered.append(t)
        stack.extend(reversed(children.get(t.task_id, ())))
    return ordered


def _kept(tasks: list[TaskState], max_rows: int) -> set[str]:
    """Task ids drawn: all when few; else unfinished and failed runs first, then the latest."""
    if len(tasks) <= max_rows:
        return {t.task_id for t in tasks}
    keep = [t.task_id for t in tasks if t.status not in _FINISHED or t.status == "WORKFLOW_TASK_FAILED"]
    keep = keep[-max_rows:]
    chosen = set(keep)
    for t in reversed(tasks):
        if len(chosen) >= max_rows:
            break
        chosen.add(t.task_id)
    return chosen


def _axis(total: float) -> str:
    ticks = "".join(
        f"<span>{format_elapsed(total * i / _TICKS, running=False)}</span>" for i in range(_TICKS + 1)
    )
    return (
        f"<div></div><div class='stigmer-timeline-axis' style='display:flex;justify-content:space-between;"
        f"align-self:end;border-bottom:1px solid {BORDER};{MUTED};font-size:11px'>{ticks}</div><div></div>"
    )


def render_timeline(snapshot: ExecutionSnapshot, now: datetime, *, max_rows: int = MAX_TIMELINE_ROWS) -> str:
    """HTML of the task runs of ``snapshot`` on one time axis from the execution's start to
    ``now`` (or its end): a bar per run, coloured by status, children indented under their parent;
    an unfinished run's bar reaches up to ``now``. Iterations of the same task are numbered
    (``#2``), retried runs show their attempt (``↻2``). At most ``max_rows`` runs are drawn.
    """
    rec = snapshot.record
    started = [t for t in snapshot.tasks if t.started_at is not None]
    if not started:
        return f"<div class='stigmer-timeline' style='{MUTED};margin-top:4px'>no task has started yet</div>"
    starts = [t.started_at for t in started if t.started_at is not None]
    ends = [t.completed_at for t in started if t.completed_at is not None]
    origin = min([rec.started_at, *starts]) if rec.started_at else min(starts)
    latest = max([*starts, *ends])
    if rec.phase.terminal:
        horizon = max(rec.completed_at or latest, latest)
    elif rec.time_skipping:
        horizon = latest  # workflow time runs ahead of the wall clock: never draw up to "now"
    else:
        horizon = max(now, latest)
    total = max((horizon - origin).total_seconds(), 1e-3)

    ordered = tree_order(started)
    runs = Counter(t.reference for t in started)
    seen: Counter[str] = Counter()
    iteration: dict[str, int] = {}
    for t in started:  # numbered in start order, whatever the drawing order
        seen[t.reference] += 1
        iteration[t.task_id] = seen[t.reference]
    kept = _kept(started, max_rows)
    rows = []
    for t in ordered:
        if t.task_id not in kept:
            continue
        assert t.started_at is not None
        finished = t.completed_at is not None or t.status in _FINISHED
        end_at = t.completed_at or (t.started_at if finished else horizon)
        start = (t.started_at - origin).total_seconds()
        length = max((end_at - t.started_at).total_seconds(), 0.0)
        left = min(100.0 * start / total, 100.0)
        width = min(100.0 * length / total, 100.0 - left)
        colour = STATUS_COLOURS.get(t.status, "#6b7280")
        status = t.status.removeprefix("WORKFLOW_TASK_")
        name = html.escape(t.name)
        marks = ""
        if runs[t.reference] > 1:
            marks += f" <span style='{MUTED}'>#{iteration[t.task_id]}</span>"
        retried = ""
        if t.attempt > 1:  # beside the duration: a long name never hides it
            retried = f"<span title='attempt {t.attempt}' style='{ink(WAITING)}'>↻{t.attempt}</span> "
        running = not finished and not rec.phase.terminal
        duration = format_elapsed(length, running=False) + ("…" if running else "")
        tip = html.escape(
            f"{t.name} · {status.lower()} · {duration}"
            + (f" · attempt {t.attempt}" if t.attempt > 1 else "")
            + f" · {t.reference}",
            quote=True,
        )
        # A running bar ends in a lighter edge: it is still growing.
        edge = ";box-shadow:inset -3px 0 0 rgba(255,255,255,.55)" if running else ""
        rows.append(
            f"<div style='overflow:hidden;text-overflow:ellipsis;padding-left:{12 * t.depth}px'>"
            f"{'└ ' if t.depth else ''}{name}{marks}</div>"
            f"<div style='height:10px;background:{TRACK};border-radius:2px'>"
            f"<div class='stigmer-timeline-bar' data-status='{status}' title='{tip}' style='margin-left:"
            f"{left:.2f}%;width:{width:.2f}%;min-width:2px;height:100%;background:{colour};"
            f"border-radius:2px{edge}'></div></div>"
            f"<div style='text-align:right'>{retried}<span style='{MUTED}'>{duration}</span></div>"
        )
    notes = []
    hidden = len(started) - len(rows)
    if hidden:
        notes.append(f"{hidden:,} other task runs not drawn (execution.tasks has every one)")
    if rec.time_skipping:
        notes.append("workflow time: idle waits were skipped")
    note = f"<div style='{MUTED};font-size:11px'>{' · '.join(notes)}</div>" if notes else ""
    return (
        "<div class='stigmer-timeline' style='margin-top:4px;font-size:12px;max-width:1100px'>"
        f"<div style='{_GRID}'>{_axis(total)}{''.join(rows)}</div>{note}</div>"
    )
