"""The live execution view: ipywidgets that follow one execution, updated from the lab's thread."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import StigmerError
from .render import ViewState, render_execution, view_class
from .static import execution_html

if TYPE_CHECKING:
    from ..lab import Execution, Lab
    from ..service import ExecutionSnapshot

__all__ = [
    "MAX_MESSAGES_PER_SECOND",
    "WIDGET_MIME",
    "ExecutionView",
    "MessageBudget",
    "display_execution",
    "execution_mimebundle",
    "view_for",
]

log = logging.getLogger(__name__)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
MAX_MESSAGES_PER_SECOND = 4
"""Comm messages one view sends in any one-second window, at most."""
_FINAL_MESSAGES = 2
"""What the last update may send (header and body): kept in reserve so it never has to wait."""
_MIN_INTERVAL = 0.25
"""Changes arriving closer together than this are coalesced into one update."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _kernel_running() -> bool:
    """True inside a Jupyter kernel (where widgets have a frontend to talk to)."""
    kernelbase = sys.modules.get("ipykernel.kernelbase")
    return bool(kernelbase is not None and kernelbase.Kernel.initialized())


def in_fresh_context(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in an empty ``contextvars`` context.

    Work on the lab's loop inherits the context of the cell that started it, and ipykernel stamps
    outgoing messages with the parent request found there: a cell long finished, whose output
    nbclient (and JupyterLab's display updates) no longer listen to. In an empty context
    ipykernel falls back to the request running now, as it does for any user thread.
    """
    return contextvars.Context().run(fn, *args)


def _is_newer(new: ExecutionSnapshot, old: ExecutionSnapshot) -> bool:
    # Snapshots may arrive out of order (a catch-up read racing a publish); never step back.
    if old.terminal:
        return False
    if new.terminal:
        return True
    return (new.record.last_seq, len(new.tasks)) >= (old.record.last_seq, len(old.tasks))


class MessageBudget:
    """Messages sent in the last ``window`` seconds; ordinary updates leave ``reserve`` free for
    the final one, so a view never exceeds ``limit`` even when it finishes right after an update."""

    def __init__(
        self,
        limit: int = MAX_MESSAGES_PER_SECOND,
        *,
        reserve: int = _FINAL_MESSAGES,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.reserve = reserve
        self.window = window
        self._clock = clock
        self._sent: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()

    def in_window(self) -> int:
        """Messages sent in the current window."""
        self._trim(self._clock())
        return len(self._sent)

    def delay(self, cost: int, *, final: bool = False) -> float:
        """Seconds until ``cost`` messages may be sent (0.0: now)."""
        now = self._clock()
        self._trim(now)
        allowed = self.limit if final else self.limit - self.reserve
        excess = len(self._sent) + cost - allowed
        if excess <= 0:
            return 0.0
        if excess > len(self._sent):
            return self.window  # more than a window's worth: cannot happen with our costs
        return max(self._sent[excess - 1] + self.window - now, 0.001)

    def spend(self, cost: int) -> None:
        """Record ``cost`` messages sent now."""
        now = self._clock()
        self._sent.extend([now] * cost)


class ExecutionView:
    """The live widget of one execution: workflow, id, phase badge, ticking elapsed time, progress,
    task table (nesting indented, errors on expand), input and output as collapsible JSON, the
    problem details on failure, and a Cancel button.

    What it shows is ``render_execution(snapshot, now)``, a pure function; the view only decides
    when to apply it: coalesced, inside ``hold_sync``, at most ``MAX_MESSAGES_PER_SECOND`` comm
    messages per second, and the final state at once. ``offer`` and ``flush`` may be called from
    any thread; ``attach`` makes an event loop (the lab's) drive the updates and the clock.
    """

    def __init__(
        self,
        snapshot: ExecutionSnapshot,
        *,
        cancel: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
        max_messages_per_second: int = MAX_MESSAGES_PER_SECOND,
    ) -> None:
        self._lock = threading.RLock()
        self._snapshot = snapshot
        self._cancel = cancel
        self._cancel_requested = False
        self._clock = clock
        self._now = now
        self.budget = MessageBudget(max_messages_per_second, clock=clock)
        self.messages = 0
        """Comm messages this view's updates have sent (after the initial state)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._last_flush = clock()
        self._detach: Callable[[], None] | None = None
        self._displays: list[Any] = []
        self._final_sent = snapshot.terminal
        state = render_execution(snapshot, now())
        self._state = state
        # Everything is set through constructors: a trait changed after a widget opened its comm
        # would cost a message each.
        self.status = widgets.HTML(state.status, layout=widgets.Layout(flex="1 1 auto"))
        self.body = widgets.HTML(state.body)
        self.inputs = widgets.HTML(state.inputs)
        self.cancel_button = widgets.Button(
            description="Cancel",
            icon="stop",
            tooltip="Cancel this execution (it ends EXECUTION_CANCELLED)",
            button_style="warning",
            disabled=cancel is None or state.terminal,
            layout=widgets.Layout(width="auto", display="none" if state.terminal else None),
            _dom_classes=("stigmer-cancel",),
        )
        self.cancel_button.on_click(self._on_cancel)
        self._header = widgets.HBox(
            [self.status, self.cancel_button],
            layout=widgets.Layout(align_items="center", justify_content="space-between"),
        )
        self.widget = widgets.VBox(
            [self._header, self.body, self.inputs],
            _dom_classes=("stigmer-view", view_class(snapshot.record.id)),
        )

    # --- facts -----------------------------------------------------------------------------------

    @property
    def execution_id(self) -> str:
        """The execution shown."""
        return self._snapshot.record.id

    @property
    def snapshot(self) -> ExecutionSnapshot:
        """The newest snapshot offered (applied or about to be)."""
        return self._snapshot

    @property
    def state(self) -> ViewState:
        """What the widgets show now."""
        return self._state

    @property
    def done(self) -> bool:
        """True once the final state has been applied (nothing will change any more)."""
        return self._final_sent

    def __repr__(self) -> str:
        # Cheap on purpose: ipywidgets' own repr walks every trait of every child.
        return f"<ExecutionView {self.execution_id} {self._state.phase}>"

    def widget_data(self) -> dict[str, Any]:
        """The ``application/vnd.jupyter.widget-view+json`` payload of the view."""
        return {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            WIDGET_MIME: self.widget_data(),
            "text/plain": repr(self),
            "text/html": execution_html(self._snapshot, self._now()),
        }

    # --- updates ---------------------------------------------------------------------------------

    def offer(self, snapshot: ExecutionSnapshot) -> None:
        """Take a newer snapshot (any thread): the final one is applied at once, others coalesced."""
        with self._lock:
            if self._final_sent or not _is_newer(snapshot, self._snapshot):
                return
            self._snapshot = snapshot
        if snapshot.terminal:
            # At once and synchronously: whoever waits on the execution then sees the final state.
            in_fresh_context(self.flush)
        else:
            self._wake()

    def flush(self) -> float | None:
        """Apply the newest state if the message budget allows. Returns the seconds until the next
        update is due (the budget frees up, or the clock ticks), or None once final."""
        with self._lock:
            if self._final_sent:
                return None
            state = render_execution(self._snapshot, self._now(), cancel_requested=self._cancel_requested)
            changes = [
                (w, v) for w, v in ((self.status, state.status), (self.body, state.body)) if w.value != v
            ]
            wait = self.budget.delay(len(changes), final=state.terminal)
            if wait > 0:
                return wait
            for widget, value in changes:
                with widget.hold_sync():
                    widget.value = value
            self.budget.spend(len(changes))
            self.messages += len(changes)
            self._state = state
            self._last_flush = self._clock()
            self._final_sent = state.terminal
        if state.terminal:
            self._finish()
            return None
        # Next tick when the elapsed time shown rolls over to the next whole second.
        return 1.0 - (state.elapsed % 1.0) + 0.01 if state.elapsed is not None else 1.0

    def follow(self, lab: Lab) -> ExecutionView:
        """Subscribe to the lab's changes of this execution and let its loop drive the updates."""
        if self._final_sent or self._detach is not None:
            return self
        service = lab.service
        self._detach = service.on_change(self.execution_id, self.offer)
        self.attach(lab._check().loop)
        # Catch up with whatever changed before the subscription existed.
        self.offer(service.snapshot(self.execution_id))
        return self

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let ``loop`` drive coalesced updates and the elapsed-time clock."""
        self._loop = loop
        self._wake()

    def _wake(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._kick, context=contextvars.Context())
        except RuntimeError:  # the loop closed meanwhile (the lab stopped)
            pass

    def _kick(self) -> None:
        self._arm(max(self._last_flush + _MIN_INTERVAL, self._clock()))

    def _arm(self, due: float) -> None:
        if self._final_sent or self._loop is None:
            return
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        delay = max(due - self._clock(), 0.0)
        self._timer = self._loop.call_later(delay, self._on_timer, context=contextvars.Context())

    def _on_timer(self) -> None:
        self._timer = None
        try:
            wait = self.flush()
        except Exception:  # a broken render must not kill the loop's other work
            log.exception("execution view update failed")
            wait = 1.0
        if wait is not None:
            self._arm(self._clock() + wait)

    def _finish(self) -> None:
        detach, self._detach = self._detach, None
        if detach is not None:
            detach()
        loop, timer = self._loop, self._timer
        if timer is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(timer.cancel)
        with self._lock:
            displays, self._displays = self._displays, []
        for handle in displays:
            self._update_display(handle)

    # --- displays and cancel ------------------------------------------------------------------

    def add_display(self, handle: Any) -> None:
        """Remember a display of this view; at the end it gets the final static HTML too, so a
        notebook saved by nbclient/nbconvert shows the outcome even where widgets cannot render."""
        with self._lock:
            if not self._final_sent:
                self._displays.append(handle)
                return
        self._update_display(handle)

    def _update_display(self, handle: Any) -> None:
        try:
            handle.update(self._repr_mimebundle_(), raw=True)
        except Exception:  # the kernel may be shutting down; the widget state still holds the end
            log.debug("could not update the display of %s", self.execution_id, exc_info=True)

    def _on_cancel(self, _button: Any = None) -> None:
        if self._cancel is None or self._cancel_requested or self._final_sent:
            return
        self._cancel_requested = True
        self._wake()
        try:
            self._cancel()
        except StigmerError as exc:
            self._cancel_requested = False
            log.warning("cancel of %s failed: %s", self.execution_id, exc)
            self.cancel_button.tooltip = f"cancel failed: {exc}"
        if self._loop is None:
            self.flush()

    def close(self) -> None:
        """Stop following and close the widgets."""
        with self._lock:
            self._final_sent = True
            self._displays.clear()
        self._finish()
        for w in (self.status, self.body, self.inputs, self.cancel_button, self._header, self.widget):
            w.close()


# --- one view per execution ---------------------------------------------------------------------

_views: weakref.WeakKeyDictionary[Lab, dict[str, ExecutionView]] = weakref.WeakKeyDictionary()
_views_lock = threading.Lock()


def view_for(execution: Execution) -> ExecutionView:
    """The live view of ``execution``: one per execution and lab, following it until it ends."""
    lab = execution.lab
    with _views_lock:
        views = _views.setdefault(lab, {})
        view = views.get(execution.id)
        if view is None:
            view = ExecutionView(lab.service.snapshot(execution.id), cancel=execution.cancel)
            views[execution.id] = view
    if lab.running:
        view.follow(lab)
    return view


def _plain(execution: Execution, snapshot: ExecutionSnapshot | None) -> str:
    if snapshot is None:
        return repr(execution)
    rec = snapshot.record
    return f"<Execution {rec.id} {rec.workflow_name} {rec.phase.name}>"


def execution_mimebundle(execution: Execution) -> dict[str, Any]:
    """The execution's MIME bundle: the live widget inside a kernel, always the static HTML (what a
    saved or exported notebook shows where widgets cannot render) and a plain-text line."""
    try:
        snapshot = execution.lab.service.snapshot(execution.id)
    except StigmerError:  # the lab is stopped and its history closed
        return {"text/plain": repr(execution)}
    bundle: dict[str, Any] = {
        "text/plain": _plain(execution, snapshot),
        "text/html": execution_html(snapshot),
    }
    if _kernel_running():
        bundle[WIDGET_MIME] = view_for(execution).widget_data()
    return bundle


def display_execution(execution: Execution) -> None:
    """Display ``execution`` with a display id, so the final static HTML replaces the first one."""
    from IPython.display import display

    bundle = execution_mimebundle(execution)
    handle = display(bundle, raw=True, display_id=True)
    if WIDGET_MIME in bundle and handle is not None:
        view_for(execution).add_display(handle)
