"""The batch view: one live progress bar for the executions a ``lab.map`` started."""

from __future__ import annotations

import asyncio
import html
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import StigmerError
from .execution import (
    MAX_MESSAGES_PER_SECOND,
    WIDGET_MIME,
    LiveView,
    MessageBudget,
    _kernel_running,
    in_fresh_context,
)
from .style import MUTED, PHASE_COLOURS, TRACK, ink

if TYPE_CHECKING:
    from ..batch import Batch
    from ..lab import Lab
    from ..service import ExecutionSnapshot

__all__ = ["BatchView", "batch_html", "batch_view_for", "display_batch", "render_batch"]

log = logging.getLogger(__name__)

_ORDER = (
    "EXECUTION_COMPLETED",
    "EXECUTION_FAILED",
    "EXECUTION_CANCELLED",
    "EXECUTION_TERMINATED",
    "EXECUTION_IN_PROGRESS",
    "EXECUTION_PAUSED",
    "EXECUTION_PENDING",
)
"""Bar segments and counts, in this order: ended first, then running, then waiting to start."""
_ENDED = frozenset(_ORDER[:4])
_MUTED = MUTED


def _short(phase: str) -> str:
    return phase.removeprefix("EXECUTION_").lower().replace("_", " ")


def render_batch(
    batch_id: str, total: int, counts: Mapping[str, int], *, tags: Sequence[str] = (), name: str = ""
) -> str:
    """The batch's progress as self-contained HTML: a bar with one segment per phase and the
    counts (a pure function: what the live view shows and a saved notebook keeps).

    ``counts``: executions per phase, by full phase name (``EXECUTION_COMPLETED`` …).
    """
    finished = sum(n for p, n in counts.items() if p in _ENDED)
    phases = [p for p in _ORDER if counts.get(p)] + sorted(p for p in counts if p not in _ORDER and counts[p])
    segments = "".join(
        f"<div title='{counts[p]} {_short(p)}' style='background:{PHASE_COLOURS.get(p, '#6b7280')};"
        f"width:{100.0 * counts[p] / total:.2f}%;height:100%'></div>"
        for p in phases
        if p in _ENDED
    )
    text = " · ".join(
        f"<span data-phase='{p}' style='{ink(PHASE_COLOURS.get(p, '#6b7280'))}'>{counts[p]} {_short(p)}</span>"
        for p in phases
    )
    tag_text = "".join(
        f" <span class='stigmer-tag' style='background:#eef2ff;color:#3730a3;border-radius:8px;"
        f"padding:0 6px;font-size:11px'>{html.escape(t)}</span>"
        for t in tags
    )
    title = f"<b>{html.escape(name)}</b> " if name else ""
    return (
        "<div class='stigmer-batch' style='font-family:var(--jp-ui-font-family,sans-serif);font-size:13px'>"
        f"<div>{title}<b>batch</b> <code style='{_MUTED}'>{html.escape(batch_id)}</code>{tag_text}</div>"
        "<div style='display:flex;align-items:center;gap:8px;margin-top:3px'>"
        f"<div style='background:{TRACK};border-radius:3px;width:320px;height:9px;overflow:hidden;"
        f"display:flex'>{segments}</div>"
        f"<span class='stigmer-batch-progress'>{finished}/{total} finished</span></div>"
        f"<div class='stigmer-batch-counts' style='{_MUTED}'>{text}</div></div>"
    )


def _phases_by_id(lab: Lab, batch_id: str) -> dict[str, str]:
    """Each execution's phase as the history has it now (one query, whatever the batch's size)."""
    rows = lab.store.rows("SELECT id, phase FROM workflow_executions WHERE batch_id = ?", [batch_id])
    return {str(eid): str(phase) for eid, phase in rows}


class BatchView(LiveView):
    """The live progress of a ``Batch``: a bar and the executions per phase, counted from the
    snapshots the lab hands each execution's subscribers (no SQL per update).

    Updates are coalesced: at most ``max_messages_per_second`` comm messages per second (each
    update is one), the last one, when every execution has ended, at once. ``offer`` may be
    called from any thread; ``attach`` makes an event loop (the lab's) drive the updates.
    """

    def __init__(
        self,
        batch_id: str,
        execution_ids: Sequence[str],
        phases: Mapping[str, str],
        *,
        tags: Sequence[str] = (),
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
        max_messages_per_second: int = MAX_MESSAGES_PER_SECOND,
    ) -> None:
        self._lock = threading.RLock()
        self.batch_id = batch_id
        self.tags = tuple(tags)
        self.name = name
        self.total = len(execution_ids)
        self._phases = {eid: phases.get(eid, "EXECUTION_PENDING") for eid in execution_ids}
        self._heard: set[str] = set()
        """Executions a snapshot came for (a later read of the history no longer overrides them)."""
        self._clock = clock
        # An update is one message, and so is the final one.
        self.budget = MessageBudget(max_messages_per_second, reserve=1, clock=clock)
        self.messages = 0
        """Comm messages this view's updates have sent (after the initial state)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._last_flush = clock()
        self._detach: list[Callable[[], None]] = []
        self._displays: list[Any] = []
        self._html = self._render()
        self._final_sent = self.finished == self.total
        self.bar = widgets.HTML(self._html, _dom_classes=("stigmer-batch-view",))
        self.widget = self.bar

    # --- facts -----------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Executions per phase (full names), as counted from the snapshots so far."""
        with self._lock:
            return dict(Counter(self._phases.values()))

    @property
    def finished(self) -> int:
        """Executions that have ended."""
        with self._lock:
            return sum(1 for p in self._phases.values() if p in _ENDED)

    @property
    def done(self) -> bool:
        """True once the final state (every execution ended) has been applied."""
        return self._final_sent

    @property
    def html(self) -> str:
        """The HTML shown now."""
        return self._html

    def __repr__(self) -> str:
        return f"<BatchView {self.batch_id} {self.finished}/{self.total} finished>"

    def _render(self) -> str:
        return render_batch(self.batch_id, self.total, self.counts(), tags=self.tags, name=self.name)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            WIDGET_MIME: {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id},
            "text/plain": repr(self),
            "text/html": self._render(),
        }

    # --- updates ---------------------------------------------------------------------------------

    def offer(self, snapshot: ExecutionSnapshot) -> None:
        """Take one execution's newer state (any thread; on the lab's, under its lock: cheap)."""
        record = snapshot.record
        with self._lock:
            eid = record.id
            if eid not in self._phases or self._final_sent or self._phases[eid] in _ENDED:
                return
            self._heard.add(eid)
            self._phases[eid] = record.phase.name
            ended = record.phase.terminal and self.finished == self.total
        # The last one at once, as the execution view does (unless the budget says wait).
        if not ended or in_fresh_context(self.flush) is not None:
            self._wake()

    def catch_up(self, phases: Mapping[str, str]) -> None:
        """Phases read from the history after subscribing: taken where no snapshot came yet, and
        always when they say an execution has ended (that is final)."""
        with self._lock:
            for eid, phase in phases.items():
                known = self._phases.get(eid)
                if known is not None and known not in _ENDED and (phase in _ENDED or eid not in self._heard):
                    self._phases[eid] = phase
        self._wake()
        if self._loop is None:
            self.flush()

    def flush(self) -> float | None:
        """Apply the newest counts if the message budget allows. Returns the seconds until the
        budget frees up, 0.0 when nothing was due, or None once final."""
        with self._lock:
            if self._final_sent:
                return None
            value = self._render()
            final = self.finished == self.total
            if value != self.bar.value:
                wait = self.budget.delay(1, final=final)
                if wait > 0:
                    return wait
                with self.bar.hold_sync():
                    self.bar.value = value
                self.budget.spend(1)
                self.messages += 1
            self._html = value
            self._last_flush = self._clock()
            self._final_sent = final
        if final:
            self._finish()
            return None
        return 0.0

    def follow(self, lab: Lab) -> BatchView:
        """Subscribe to every execution still running and let the lab's loop drive the updates."""
        if self._final_sent or self._detach:
            return self
        service = lab.service
        with self._lock:
            running = [eid for eid, p in self._phases.items() if p not in _ENDED]
        self._detach = [service.on_change(eid, self.offer) for eid in running]
        self.attach(lab._check().loop)
        # Whatever changed before the subscriptions existed.
        self.catch_up(_phases_by_id(lab, self.batch_id))
        return self

    def _finish(self) -> None:
        with self._lock:
            detach, self._detach = self._detach, []
            displays, self._displays = self._displays, []
        for stop in detach:
            stop()
        loop, timer = self._loop, self._timer
        if timer is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(timer.cancel)
        for handle in displays:
            self._update_display(handle)

    # --- displays ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following and close the widget."""
        with self._lock:
            self._final_sent = True
            self._displays.clear()
        self._finish()
        self.bar.close()


# --- one view per batch ----------------------------------------------------------------------------

_views: weakref.WeakKeyDictionary[Lab, dict[str, BatchView]] = weakref.WeakKeyDictionary()
_views_lock = threading.Lock()


def batch_view_for(batch: Batch) -> BatchView:
    """The live view of ``batch``: one per batch and lab, following it until every run ended."""
    lab = batch.lab
    with _views_lock:
        views = _views.setdefault(lab, {})
        view = views.get(batch.id)
        if view is None:
            view = BatchView(
                batch.id,
                [e.id for e in batch.executions],
                _phases_by_id(lab, batch.id),
                tags=batch.tags,
            )
            views[batch.id] = view
    if lab.running:
        view.follow(lab)
    return view


def batch_html(batch: Batch) -> str:
    """The batch's progress as static HTML, read from the history (what a saved notebook keeps)."""
    phases = _phases_by_id(batch.lab, batch.id)
    counts = Counter(phases.get(e.id, "EXECUTION_PENDING") for e in batch.executions)
    return render_batch(batch.id, len(batch), counts, tags=batch.tags)


def display_batch(batch: Batch) -> None:
    """Show the batch's progress: live inside a kernel (with a display id, so the final static HTML
    replaces the first one), else the static HTML."""
    from IPython.display import display

    try:
        static = batch_html(batch)
    except StigmerError:  # the lab is stopped and its history closed
        display({"text/plain": f"<Batch {batch.id} of {len(batch)}>"}, raw=True)
        return
    bundle: dict[str, Any] = {"text/plain": f"<Batch {batch.id} of {len(batch)}>", "text/html": static}
    if not _kernel_running():
        display(bundle, raw=True)
        return
    view = batch_view_for(batch)
    bundle = view._repr_mimebundle_()
    handle = display(bundle, raw=True, display_id=True)
    if handle is not None:
        view.add_display(handle)
