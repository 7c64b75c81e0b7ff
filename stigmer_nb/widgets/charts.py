"""Charts as PNG bytes for image value traits: phase counts, durations, throughput, task timeline."""

# Figures are built with matplotlib's object API on the Agg canvas, never through pyplot, so no
# global figure state is touched and rendering is safe from any thread.
#
# Every colour is set here rather than taken from rcParams: inside a kernel matplotlib-inline makes
# figures transparent, and a notebook may use a dark style, either of which would leave dark text
# on a dark JupyterLab background (or white on white). Each chart is an opaque light card with a
# thin border and dark text, readable in the light and the dark theme alike.

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import analytics
from .style import PHASE_COLOURS, STATUS_COLOURS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..service import ExecutionSnapshot

__all__ = ["BORDER", "INK", "PAPER", "durations_png", "phase_counts_png", "throughput_png", "timeline_png"]

PAPER = "#ffffff"
"""Background of every chart (opaque)."""
INK = "#1f2937"
"""Colour of titles, labels and tick labels."""
BORDER = "#9ca3af"
"""The chart's frame and axis lines: visible on a white card and on a dark page."""
_MUTED = "#6b7280"
MAX_TIMELINE_ROWS = 40
MAX_WORKFLOWS = 8


def _figure(width: float = 4.4, height: float = 2.6) -> tuple[Figure, Axes]:
    fig = Figure(
        figsize=(width, height),
        dpi=100,
        layout="constrained",
        facecolor=PAPER,
        edgecolor=BORDER,
        linewidth=1.0,
    )
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(facecolor=PAPER)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(BORDER)
    ax.tick_params(labelsize=8, color=BORDER, labelcolor=INK)
    return fig, ax


def _title(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=10, loc="left", color=INK)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor=PAPER, edgecolor=BORDER, transparent=False)
    return buffer.getvalue()


def _empty(fig: Figure, ax: Axes, title: str, text: str) -> bytes:
    _title(ax, title)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=_MUTED, fontsize=9)
    ax.set_axis_off()
    return _png(fig)


def _short(phase: str) -> str:
    return phase.removeprefix("EXECUTION_").lower().replace("_", " ")


def phase_counts_png(executions: pd.DataFrame) -> bytes:
    """Bar chart: how many executions are in each phase."""
    fig, ax = _figure()
    title = "Executions by phase"
    if executions.empty:
        return _empty(fig, ax, title, "no executions yet")
    counts = analytics.phase_counts(executions)
    names = [_short(p) for p in counts["phase"]][::-1]
    colours = [PHASE_COLOURS.get(p, _MUTED) for p in counts["phase"]][::-1]
    bars = ax.barh(names, list(counts["executions"])[::-1], color=colours)
    ax.bar_label(bars, fontsize=8, padding=2, color=INK)
    _title(ax, title)
    ax.set_xlabel("executions", fontsize=8, color=INK)
    ax.margins(x=0.15)
    return _png(fig)


def durations_png(executions: pd.DataFrame) -> bytes:
    """Box plot per workflow of how long finished executions took (seconds), every run as a dot."""
    fig, ax = _figure()
    title = "Duration per workflow"
    durations = analytics.execution_durations(executions).dropna(subset=["duration_ms"])
    if durations.empty:
        return _empty(fig, ax, title, "no finished executions yet")
    top = list(durations["workflow_name"].value_counts().index[:MAX_WORKFLOWS])
    positions = list(range(1, len(top) + 1))
    groups = [durations[durations["workflow_name"] == w] for w in top]
    # Boxes drawn by hand: Axes.boxplot walks every rcParam, and reading 'backend' imports pyplot.
    for pos, group in zip(positions, groups, strict=True):
        q0, q1, q2, q3, q4 = (group["duration_ms"] / 1000.0).quantile([0, 0.25, 0.5, 0.75, 1]).tolist()
        ax.barh(pos, q3 - q1, left=q1, height=0.5, facecolor="#eef2ff", edgecolor="#4b5563", linewidth=0.8)
        ax.vlines(q2, pos - 0.25, pos + 0.25, color=INK, linewidth=1.2)
        ax.hlines(pos, q0, q1, color="#4b5563", linewidth=0.8)
        ax.hlines(pos, q3, q4, color="#4b5563", linewidth=0.8)
    for pos, group in zip(positions, groups, strict=True):
        colours = [PHASE_COLOURS.get(p, _MUTED) for p in group["phase"]]
        ax.scatter(group["duration_ms"] / 1000.0, [pos] * len(group), s=9, c=colours, alpha=0.6, zorder=3)
    ax.set_yticks(positions, [str(w)[:24] for w in top])
    ax.set_xlabel("seconds", fontsize=8, color=INK)
    _title(ax, title)
    return _png(fig)


def throughput_png(executions: pd.DataFrame, freq: str | None = None) -> bytes:
    """Stacked bars: executions finishing per time bucket, by outcome."""
    fig, ax = _figure()
    title = "Throughput (finished per interval)"
    table = analytics.throughput(executions, freq) if not executions.empty else pd.DataFrame()
    if table.empty:
        return _empty(fig, ax, title, "nothing finished yet")
    index = table.index.tz_convert(UTC).tz_localize(None)
    width = (index[1] - index[0]) * 0.9 if len(index) > 1 else pd.Timedelta(seconds=1)
    bottom = pd.Series(0, index=index)
    for phase in table.columns:
        values = pd.Series(table[phase].to_numpy(), index=index)
        ax.bar(
            index,
            values,
            width=width,
            bottom=bottom,
            color=PHASE_COLOURS.get(phase, _MUTED),
            label=_short(phase),
            align="edge",
        )
        bottom = bottom + values
    locator = mdates.AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    _title(ax, title)
    ax.set_ylabel("executions", fontsize=8, color=INK)
    ax.set_xlabel("UTC", fontsize=8, color=INK)
    ax.legend(fontsize=7, frameon=False, loc="upper left", labelcolor=INK)
    return _png(fig)


def timeline_png(snapshot: ExecutionSnapshot, now: datetime | None = None) -> bytes:
    """Gantt chart of one execution's task runs in start order, nested tasks indented; running
    tasks reach up to ``now``."""
    rec = snapshot.record
    tasks = [t for t in snapshot.tasks if t.started_at is not None]
    rows = min(len(tasks), MAX_TIMELINE_ROWS)
    fig, ax = _figure(width=7.5, height=max(1.6, 0.7 + 0.24 * rows))
    title = f"{rec.workflow_name} · {rec.id} · {_short(rec.phase.name)}"
    if not tasks:
        return _empty(fig, ax, title, "no task has started yet")
    now = now or datetime.now(UTC)
    origin = rec.started_at or min(t.started_at for t in tasks if t.started_at is not None)
    hidden = len(tasks) - rows
    tasks = tasks[:rows]
    spans: list[tuple[float, float]] = []
    for task in tasks:
        assert task.started_at is not None
        end_at = task.completed_at or (rec.completed_at if rec.phase.terminal else None) or now
        start = (task.started_at - origin).total_seconds()
        spans.append((start, max((end_at - task.started_at).total_seconds(), 0.0)))
    total = max(max(start + width for start, width in spans), 0.01)
    # Instant tasks (a `set`) would be invisible: every bar gets at least a sliver of the span.
    sliver = total * 0.006
    for row, (task, (start, width)) in enumerate(zip(tasks, spans, strict=True)):
        ax.barh(
            row, max(width, sliver), left=start, height=0.6, color=STATUS_COLOURS.get(task.status, _MUTED)
        )
    ax.set_xlim(0, total * 1.02)
    names = [("   " * t.depth + ("└ " if t.depth else "") + t.name)[:40] for t in tasks]
    ax.set_yticks(range(rows), names, fontsize=8)
    ax.invert_yaxis()
    shown = f"  (first {rows} of {rows + hidden} tasks)" if hidden else ""
    clock = " (workflow time: idle waits were skipped)" if rec.time_skipping else ""
    ax.set_xlabel("seconds since start" + clock + shown, fontsize=8, color=INK)
    _title(ax, title)
    return _png(fig)
