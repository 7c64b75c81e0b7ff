"""The history dashboard: filters, an executions table that follows the history, charts, a timeline."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import html
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from .. import analytics
from ..errors import StigmerError
from .charts import durations_png, phase_counts_png, throughput_png, timeline_png
from .execution import in_fresh_context
from .style import ERROR, MUTED, PHASE_COLOURS, ink

if TYPE_CHECKING:
    from ..lab import Lab

__all__ = ["WINDOWS", "Dashboard", "executions_table_html", "summary_html"]

log = logging.getLogger(__name__)

WINDOWS: list[tuple[str, str]] = [
    ("all time", ""),
    ("last 15 minutes", "15min"),
    ("last hour", "1h"),
    ("last 24 hours", "24h"),
    ("last 7 days", "7d"),
]
"""Time-window filter choices: label and ``since`` value ("" means no limit)."""
_LIFECYCLE = (
    "EXECUTION_PENDING",
    "EXECUTION_IN_PROGRESS",
    "EXECUTION_PAUSED",
    "EXECUTION_COMPLETED",
    "EXECUTION_FAILED",
    "EXECUTION_CANCELLED",
    "EXECUTION_TERMINATED",
)
_PHASE_CHOICES: list[tuple[str, str]] = [("all phases", ""), ("running", "running")] + [
    (p.removeprefix("EXECUTION_").lower().replace("_", " "), p)
    for p in sorted(analytics.PHASES, key=lambda p: (*_LIFECYCLE, p).index(p))
]
_TABLE_ROWS = 50
_MUTED = MUTED


def _duration(ms: Any) -> str:
    if ms is None or pd.isna(ms):
        return ""
    return f"{ms / 1000:.2f}s" if ms < 60_000 else f"{ms / 60_000:.1f}min"


def _error_title(error: Any) -> str:
    if isinstance(error, str):
        try:
            error = json.loads(error)
        except ValueError:
            return error
    if isinstance(error, dict):
        return str(error.get("title") or error.get("detail") or "")
    return ""


def _tags(value: Any) -> list[str]:
    """A ``tags`` cell as a list (DuckDB hands a list over as an array, NULL as NA)."""
    if isinstance(value, str):
        return [value]
    if value is None or value is pd.NA or isinstance(value, float):
        return []
    return [str(t) for t in value]


def _tag_chips(tags: list[str]) -> str:
    return "".join(
        "<span class='stigmer-tag' style='background:#eef2ff;color:#3730a3;border-radius:8px;"
        f"padding:0 6px;margin-right:3px;font-size:11px;white-space:nowrap'>{html.escape(t)}</span>"
        for t in tags
    )


def executions_table_html(executions: pd.DataFrame, *, rows: int = _TABLE_ROWS) -> str:
    """HTML table of the newest ``rows`` executions: name and id, workflow, phase, tags, start,
    duration, error."""
    if executions.empty:
        return f"<div style='{_MUTED}'>no executions match these filters</div>"
    durations = analytics.execution_durations(executions.head(rows))
    errors = executions.head(rows)["error"] if "error" in executions else [None] * len(durations)
    tags = executions.head(rows)["tags"] if "tags" in executions else [None] * len(durations)
    body = []
    for (_, row), error, tag_list in zip(durations.iterrows(), errors, tags, strict=True):
        phase = str(row["phase"])
        colour = PHASE_COLOURS.get(phase, "#6b7280")
        created = row["created_at"].strftime("%Y-%m-%d %H:%M:%S") if pd.notna(row["created_at"]) else ""
        body.append(
            f"<tr data-execution='{row['execution_id']}'>"
            f"<td style='padding:1px 8px'>{html.escape(str(row['name']))}<br>"
            f"<code style='{_MUTED};font-size:11px'>{row['execution_id']}</code></td>"
            f"<td style='padding:1px 8px'>{html.escape(str(row['workflow_name']))}</td>"
            f"<td style='padding:1px 8px;{ink(colour)};font-weight:600'>{phase.removeprefix('EXECUTION_')}</td>"
            f"<td class='stigmer-tags' style='padding:1px 8px'>{_tag_chips(_tags(tag_list))}</td>"
            f"<td style='padding:1px 8px;white-space:nowrap'>{created}</td>"
            f"<td style='padding:1px 8px;text-align:right'>{_duration(row['duration_ms'])}</td>"
            f"<td style='padding:1px 8px;{ink(ERROR)}'>{html.escape(_error_title(error))}</td></tr>"
        )
    head = "".join(
        f"<th style='text-align:left;padding:1px 8px'>{h}</th>"
        for h in ("execution", "workflow", "phase", "tags", "created (UTC)", "duration", "error")
    )
    more = (
        f"<div style='{_MUTED}'>newest {rows} of {len(executions):,} shown</div>"
        if len(executions) > rows
        else ""
    )
    return (
        "<div style='max-height:320px;overflow:auto;font-size:12px'>"
        "<table class='stigmer-executions' style='border-collapse:collapse'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{more}"
    )


def summary_html(executions: pd.DataFrame) -> str:
    """One line: how many executions, how many running, failure rate, median duration."""
    if executions.empty:
        return f"<span style='{_MUTED}'>0 executions</span>"
    phases = executions["phase"]
    running = int(phases.isin(analytics.RUNNING_PHASES).sum())
    finished = int(phases.isin(analytics.TERMINAL_PHASES).sum())
    failed = int((phases == "EXECUTION_FAILED").sum())
    durations = analytics.execution_durations(executions)["duration_ms"].dropna()
    parts = [f"<b>{len(executions):,}</b> executions", f"{running} running"]
    if finished:
        parts.append(f"{failed / finished:.0%} failed")
    if not durations.empty:
        parts.append(f"median {durations.median() / 1000:.2f}s, p90 {durations.quantile(0.9) / 1000:.2f}s")
    return "<span class='stigmer-summary'>" + " · ".join(parts) + "</span>"


class Dashboard:
    """``lab.dashboard()``: filters (workflow, phase, tag, time window), the executions table, charts
    (phase counts, duration per workflow, throughput) and a task timeline of one execution.

    It follows the history by polling a one-row query every ``poll`` seconds on the lab's loop
    (work runs on a helper thread, so workers never wait); charts re-render at most every
    ``chart_interval`` seconds. Filter changes from the frontend refresh at once.
    """

    def __init__(
        self,
        lab: Lab,
        *,
        workflow: str | None = None,
        phase: str | None = None,
        since: str | None = None,
        tag: str | None = None,
        limit: int = 2000,
        poll: float = 1.0,
        chart_interval: float = 3.0,
        follow: bool = True,
    ) -> None:
        self.lab = lab
        self.limit = limit
        self.poll = poll
        self.chart_interval = chart_interval
        self._lock = threading.RLock()
        self._closed = False
        self._signature: Any = None
        self._charts_at = 0.0
        self._charts_stale = False
        self._frame = pd.DataFrame()
        self._task: concurrent.futures.Future[None] | None = None
        self.refreshes = 0
        names = self._workflow_names()
        if workflow and workflow not in names:
            workflow = lab.service.get_workflow(workflow).name  # a clear error for unknown names
        phases = analytics.normalise_phases(phase)
        phase_value = "running" if phases == list(analytics.RUNNING_PHASES) else (phases[0] if phases else "")
        since_value = since or ""
        windows = list(WINDOWS) + (
            [(f"since {since}", since)] if since and since not in dict(WINDOWS).values() else []
        )
        style = {"description_width": "auto"}
        self.workflow = widgets.Dropdown(
            options=self._workflow_options(names), value=workflow or "", description="workflow", style=style
        )
        self.phase = widgets.Dropdown(
            options=_PHASE_CHOICES, value=phase_value, description="phase", style=style
        )
        self.window = widgets.Dropdown(options=windows, value=since_value, description="window", style=style)
        self._wanted_tag = tag.strip() if tag and tag.strip() else ""
        self.tag = widgets.Dropdown(
            options=self._tag_options(self._known_tags()),
            value=self._wanted_tag,
            description="tag",
            style=style,
        )
        self.summary = widgets.HTML()
        self.table = widgets.HTML()
        chart = widgets.Layout(width="32%", min_width="260px")
        self.phase_chart = widgets.Image(format="png", layout=chart)
        self.duration_chart = widgets.Image(format="png", layout=chart)
        self.throughput_chart = widgets.Image(format="png", layout=chart)
        self.selected = widgets.Dropdown(
            options=[("—", "")], value="", description="timeline of", style=style
        )
        self.timeline = widgets.Image(format="png", layout=widgets.Layout(width="auto"))
        self._timeline_key: tuple[Any, ...] | None = None
        self._selecting = False
        self._quiet = False
        """Set while refresh() changes a filter's choices (which must not refresh again)."""
        self._pinned = False
        self.refresh(charts=True)
        for control in (self.workflow, self.phase, self.tag, self.window):
            control.observe(self._on_filter, names="value")
        self.selected.observe(self._on_select, names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox(
                    [self.workflow, self.phase, self.tag, self.window],
                    layout=widgets.Layout(flex_flow="row wrap"),
                ),
                self.summary,
                self.table,
                widgets.HBox(
                    [self.phase_chart, self.duration_chart, self.throughput_chart],
                    layout=widgets.Layout(flex_flow="row wrap", justify_content="space-between"),
                ),
                self.selected,
                self.timeline,
            ],
            _dom_classes=("stigmer-dashboard",),
        )
        if follow and lab.running:
            self._task = asyncio.run_coroutine_threadsafe(self._follow(), lab._check().loop)

    # --- data ------------------------------------------------------------------------------------

    def _workflow_names(self) -> list[str]:
        return sorted({w.name for w in self.lab.service.workflows()})

    @staticmethod
    def _workflow_options(names: list[str]) -> list[tuple[str, str]]:
        return [("all workflows", "")] + [(n, n) for n in names]

    def _known_tags(self) -> list[str]:
        rows = self.lab.store.rows(
            "SELECT DISTINCT unnest(tags) AS tag FROM workflow_executions ORDER BY tag"
        )
        return [str(r[0]) for r in rows]

    def _tag_options(self, tags: list[str]) -> list[tuple[str, str]]:
        # A tag asked for before any execution carries it is offered all the same.
        known = sorted({*tags, *([self._wanted_tag] if self._wanted_tag else [])})
        return [("all tags", "")] + [(t, t) for t in known]

    @property
    def filters(self) -> dict[str, Any]:
        """The filters: ``lab.history``'s (workflow, phase, since) and the tag."""
        return {
            "workflow": self.workflow.value or None,
            "phase": self.phase.value or None,
            "since": self.window.value or None,
            "tag": self.tag.value or None,
        }

    def _history(self) -> pd.DataFrame:
        """``lab.history`` with the filters, the tag one included (``list_contains`` in the SQL)."""
        from ..lab import _json_columns

        filters = self.filters
        where, params = self.lab._history_filters(
            filters["workflow"], filters["phase"], filters["since"], "created_at"
        )
        if filters["tag"]:
            where += (" AND " if where else " WHERE ") + "list_contains(tags, ?)"
            params.append(filters["tag"])
        sql = f"SELECT * FROM workflow_executions{where} ORDER BY created_at DESC, id DESC LIMIT {int(self.limit)}"
        return _json_columns(self.lab.store.query(sql, params), ("input", "output", "error", "runtime_env"))

    @property
    def executions(self) -> pd.DataFrame:
        """The executions the dashboard shows (newest first)."""
        return self._frame

    def _history_signature(self) -> tuple[Any, ...]:
        row = self.lab.store.rows("SELECT count(*), max(updated_at) FROM workflow_executions")[0]
        return (row[0], row[1], len(self.lab.service.workflows()))

    # --- rendering ------------------------------------------------------------------------------

    def refresh(self, *, charts: bool = True) -> None:
        """Re-read the history and update the table (and the charts when ``charts``)."""
        with self._lock:
            if self._closed:
                return
            frame = self._history()
            self._frame = frame
            self.refreshes += 1
            names = self._workflow_names()
            self._set_options(self.workflow, self._workflow_options(names))
            self._set_options(self.tag, self._tag_options(self._known_tags()))
            self._set(self.summary, summary_html(frame))
            self._set(self.table, executions_table_html(frame))
            self._update_selection(frame)
            if charts:
                self._set(self.phase_chart, phase_counts_png(frame))
                self._set(self.duration_chart, durations_png(frame))
                self._set(self.throughput_chart, throughput_png(frame))
                self._charts_at = time.monotonic()
                self._charts_stale = False
            else:
                self._charts_stale = True
            self._render_timeline()

    def _refresh_charts(self) -> None:
        self.refresh(charts=True)

    def _refresh_table(self) -> None:
        self.refresh(charts=False)

    def _set_options(self, dropdown: widgets.Dropdown, options: list[tuple[str, str]]) -> None:
        """New choices, keeping the one made when it is still offered (no refresh of its own)."""
        if list(dropdown.options) == options:
            return
        value = dropdown.value
        self._quiet = True
        try:
            with dropdown.hold_sync():
                dropdown.options = options
                dropdown.value = value if value in dict(options).values() else ""
        finally:
            self._quiet = False

    @staticmethod
    def _set(widget: widgets.Widget, value: Any) -> None:
        if widget.value != value:
            with widget.hold_sync():
                widget.value = value

    def _update_selection(self, frame: pd.DataFrame) -> None:
        head = frame.head(_TABLE_ROWS)
        options = [("—", "")] + [
            (f"{r.name} · {r.workflow_name} · {str(r.phase).removeprefix('EXECUTION_').lower()}", r.id)
            for r in head.itertuples()
        ]
        current = self.selected.value
        if list(self.selected.options) == options:
            return
        ids = [v for _, v in options]
        # Follow the newest execution, unless someone picked one that is still listed.
        newest = ids[1] if len(ids) > 1 else ""
        value = current if self._pinned and current in ids and current else newest
        self._selecting = True  # refresh() draws the timeline itself afterwards
        try:
            with self.selected.hold_sync():
                self.selected.options = options
                self.selected.value = value
        finally:
            self._selecting = False

    def _render_timeline(self) -> None:
        eid = self.selected.value
        if not eid:
            self._timeline_key = None
            self._set(self.timeline, b"")
            return
        snapshot = self.lab.service.snapshot(eid)
        key = (eid, snapshot.record.phase, snapshot.record.last_seq, len(snapshot.tasks))
        # A running execution's bars grow with time, so it is redrawn on every refresh.
        if key == self._timeline_key and snapshot.terminal:
            return
        self._timeline_key = key
        self._set(self.timeline, timeline_png(snapshot))

    def _on_filter(self, _change: Any) -> None:
        if self._quiet:
            return
        try:
            self.refresh(charts=True)
        except StigmerError as exc:
            self._set(self.summary, f"<span style='{ink(ERROR)}'>{html.escape(str(exc))}</span>")

    def _on_select(self, change: Any) -> None:
        if self._selecting:
            return
        self._pinned = bool(change["new"]) if isinstance(change, dict) else True
        with self._lock:
            try:
                self._render_timeline()
            except StigmerError as exc:
                self._set(self.summary, f"<span style='{ink(ERROR)}'>{html.escape(str(exc))}</span>")

    # --- following the history -----------------------------------------------------------------

    async def _follow(self) -> None:
        while not self._closed and self.lab.running:
            await asyncio.sleep(self.poll)
            try:
                signature = await asyncio.to_thread(self._history_signature)
                charts_due = time.monotonic() - self._charts_at >= self.chart_interval
                if signature != self._signature or (self._charts_stale and charts_due):
                    self._signature = signature
                    await asyncio.to_thread(
                        in_fresh_context, self._refresh_charts if charts_due else self._refresh_table
                    )
            except StigmerError:  # the lab stopped under us
                return
            except Exception:
                log.exception("dashboard refresh failed")

    def close(self) -> None:
        """Stop following the history and close the widgets."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        self.widget.close()

    # --- display --------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<Dashboard {len(self._frame)} executions filters={self.filters}>"

    def static_html(self) -> str:
        """The dashboard as self-contained HTML (what a saved notebook shows without widgets)."""

        def img(widget: widgets.Image) -> str:
            if not widget.value:
                return ""
            data = base64.b64encode(widget.value).decode()
            return f"<img src='data:image/png;base64,{data}' style='max-width:33%'>"

        return (
            "<div class='stigmer-dashboard'>"
            + self.summary.value
            + self.table.value
            + "<div>"
            + img(self.phase_chart)
            + img(self.duration_chart)
            + img(self.throughput_chart)
            + "</div></div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .execution import WIDGET_MIME

        return {
            WIDGET_MIME: {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id},
            "text/plain": repr(self),
            "text/html": self.static_html(),
        }
