"""The live execution view: ipywidgets that follow one execution, updated from the lab's thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import json
import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import StigmerError
from .panels import LATEST, PANELS, graph_available, render_graph
from .render import ACTIONS, ViewState, pending_approvals, render_execution, view_class
from .static import execution_html

if TYPE_CHECKING:
    from ..lab import Execution, Lab
    from ..service import ExecutionSnapshot

__all__ = [
    "MAX_MESSAGES_PER_SECOND",
    "LiveView",
    "WIDGET_MIME",
    "ExecutionView",
    "MessageBudget",
    "TERMINATE_REASON",
    "approval_prompts",
    "display_execution",
    "graph_of",
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
        # The window is what the frontend sees, and messages reach it a few ms apart from when
        # they left: a margin keeps a message due at the window's edge from landing inside it.
        return max(self._sent[excess - 1] + self.window - now + _EDGE_MARGIN, 0.001)

    def room(self, *, final: bool = False) -> int:
        """Messages that may be sent now."""
        self._trim(self._clock())
        return max((self.limit if final else self.limit - self.reserve) - len(self._sent), 0)

    def spend(self, cost: int) -> None:
        """Record ``cost`` messages sent now."""
        now = self._clock()
        self._sent.extend([now] * cost)


_BUTTONS: dict[str, tuple[str, str, str, str]] = {
    # action: description, icon, tooltip, button style
    "pause": (
        "Pause",
        "pause",
        "Pause at the next task boundary (it stays EXECUTION_PAUSED until resumed)",
        "",
    ),
    "resume": ("Resume", "play", "Go on after the pause", "success"),
    "cancel": ("Cancel", "stop", "Cancel this execution (it ends EXECUTION_CANCELLED)", "warning"),
    "terminate": (
        "Terminate",
        "power-off",
        "Stop it at once: no task finishes or cleans up (it ends EXECUTION_TERMINATED)",
        "danger",
    ),
    "rerun": ("Re-run", "repeat", "Run it again as a new execution (same document version and input)", ""),
    "recover": (
        "Recover",
        "wrench",
        "Go on from the task it failed in, with that task's recorded input, as a new execution",
        "info",
    ),
    "approve": ("Approve", "check", "Approve: the approval task completes with approved: true", "success"),
    "reject": ("Reject", "times", "Reject: the approval task completes with approved: false", "danger"),
}
_LABELS = {"rerun": "re-run", "recover": "recovery"}
TERMINATE_REASON = "terminated from the notebook"
"""The reason the Terminate button gives (the execution's error and lifecycle log say it)."""
_PANEL_LABELS = {
    "tasks": ("Tasks", "One row per task run: status, duration, error"),
    "timeline": ("Timeline", "The task runs on a time axis, growing while they run"),
    "graph": ("Graph", "The workflow's tasks as a graph, and the latest input, output and error of one"),
}
_DETAILS_LABEL = ("Details", "The latest input, output and error of one task")
"""The third panel's label while there is no graph to draw (``stigmer_nb.graph`` missing)."""
_PROMPT_TRIES = 10
_PROMPT_RETRY = 0.2
"""An approval's prompt is noted just after its task starts: a lookup that finds none yet retries."""


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, StigmerError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_GRAPH_INTERVAL = 1.0
_EDGE_MARGIN = 0.03
"""Seconds added to a wait for budget room (delivery jitter)."""
_GRAPH_HOLD = 3.0
"""Seconds the final update may wait for the graph of the final state."""
"""Seconds between the starts of two drawings of one view's graph, at least."""


def _in_background(fn: Callable[..., Any], *args: Any, pool: str = "lookups") -> None:
    """Run ``fn(*args)`` on a helper thread: never on the lab's thread, which sends the updates.
    Graphs draw on threads of their own, so a slow drawing never holds up an approval's prompt."""
    with _pools_lock:
        executor = _pools.get(pool)
        if executor is None:
            executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=2 if pool == "lookups" else 4, thread_name_prefix=f"stigmer-view-{pool}"
            )
            _pools[pool] = executor
    executor.submit(in_fresh_context, fn, *args)


class LiveView:
    """A view that follows changes: updates driven by an event loop (the lab's), coalesced,
    ``_MIN_INTERVAL`` apart at least, and again after as many seconds as ``flush`` answers (none
    more when it answers None or 0); its displays get the final static HTML at the end.

    A view sets ``_lock``, ``_displays``, ``_clock``, ``_loop``, ``_timer``, ``_timer_due``,
    ``_last_flush`` and ``_final_sent`` in its constructor, and implements ``flush`` and
    ``_repr_mimebundle_``.
    """

    _lock: threading.RLock
    _displays: list[Any]
    _clock: Callable[[], float]
    _loop: asyncio.AbstractEventLoop | None
    _timer: asyncio.TimerHandle | None
    _timer_due: float
    _last_flush: float
    _final_sent: bool

    def flush(self) -> float | None:
        """Apply what is due; the seconds until the next update is due, or None/0 when none is."""
        raise NotImplementedError

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        raise NotImplementedError

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
            log.debug("could not update the display of %r", self, exc_info=True)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let ``loop`` drive coalesced updates (and a view's clock)."""
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
            log.exception("%s update failed", type(self).__name__)
            wait = 1.0
        if wait:
            self._arm(self._clock() + wait)


class ExecutionView(LiveView):
    """The live widget of one execution: workflow, id, phase badge, ticking elapsed time, progress,
    task table (nesting indented, errors on expand), input and output as collapsible JSON, the
    problem details on failure, the steering buttons the phase allows (Pause, Resume, Cancel,
    Terminate while it runs; Re-run, and Recover after a recoverable failure, once it has ended)
    and, while an approval task waits, the request with a comment field and Approve / Reject.

    What it shows is ``render_execution(snapshot, now)``, a pure function; the view only decides
    when to apply it: coalesced, inside ``hold_sync``, at most ``MAX_MESSAGES_PER_SECOND`` comm
    messages per second, and the final state at once. Which buttons show is CSS inside the status
    HTML, so it changes within the same update. ``offer`` and ``flush`` may be called from any
    thread; ``attach`` makes an event loop (the lab's) drive the updates and the clock.

    Every action is a callback (``view_for`` passes the execution's methods); a button whose
    callback is None never shows. ``approve`` and ``reject`` take the comment and the task id;
    ``prompts`` returns the recorded prompts of the execution's approval tasks by task id (read
    once per new approval task, on a helper thread); ``show`` displays an execution a Re-run or
    Recover started (by default inside this view).

    Below the header a selector switches the body between the task table, the task timeline and
    the graph panel (``PANELS``); only the panel shown is rendered and sent, inside the body's own
    update, so the choice costs no message per update. The graph panel has a task selector whose
    latest run's input, output and error it shows, and the SVG ``graph(snapshot)`` returns (drawn
    on a helper thread while that panel is shown, when a task changed; ``view_for`` passes
    ``panels.render_graph`` with the execution's document). A choice made in the frontend is
    applied by the next budgeted update, or at once (one message) after the end.
    """

    def __init__(
        self,
        snapshot: ExecutionSnapshot,
        *,
        cancel: Callable[[], object] | None = None,
        pause: Callable[[], object] | None = None,
        resume: Callable[[], object] | None = None,
        terminate: Callable[[], object] | None = None,
        rerun: Callable[[], object] | None = None,
        recover: Callable[[], object] | None = None,
        approve: Callable[[str | None, str], object] | None = None,
        reject: Callable[[str | None, str], object] | None = None,
        prompts: Callable[[], Mapping[str, Any]] | None = None,
        show: Callable[[Any], object] | None = None,
        graph: Callable[[ExecutionSnapshot], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
        max_messages_per_second: int = MAX_MESSAGES_PER_SECOND,
    ) -> None:
        self._lock = threading.RLock()
        self._snapshot = snapshot
        self._calls: dict[str, Callable[[], object] | None] = {
            "pause": pause,
            "resume": resume,
            "cancel": cancel,
            "terminate": terminate,
            "rerun": rerun,
            "recover": recover,
        }
        self._decisions = {"approve": approve, "reject": reject}
        self._enabled = frozenset(
            a for a, fn in (*self._calls.items(), *self._decisions.items()) if fn is not None
        )
        self._requested: str | None = None
        """The steering action asked for and not yet visible in the phase."""
        self._deciding: tuple[str, str] | None = None
        """(task id, "approve" or "reject") of a decision on its way."""
        self._notice: tuple[str, str] | None = None
        """(phase, line): the last action that failed, shown until the phase changes."""
        self._tooltips: dict[str, str] = {}
        self._clear_comment = False
        self._again_busy = False
        self._prompt_source = prompts
        self._prompts: dict[str, Any] = {}
        self._prompts_asked: set[str] = set()
        self._looking = False
        self._show = show or self._show_here
        self._panel = "tasks"
        self._selected = LATEST
        self._graph_source = graph
        self._graph: tuple[Any, str | None] | None = None
        """(key of the snapshot drawn, its SVG) of the last graph drawn."""
        self._graphing = False
        self._graph_failed = False
        self._held_since = 0.0
        """When the final update began to wait for the graph (0: it has not)."""
        self._applying = False
        """Set while an update assigns traits (a selection it moves is not a person's pick)."""
        self.started: list[Any] = []
        """Executions the Re-run and Recover buttons started, in order."""
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
        state = self._render(now())
        self._state = state
        # Everything is set through constructors: a trait changed after a widget opened its comm
        # would cost a message each. Buttons of a running execution all exist and the status'
        # CSS shows the right ones; an ended execution's set never changes, so it is fixed here.
        fixed = state.terminal
        self.status = widgets.HTML(state.status, layout=widgets.Layout(flex="1 1 auto"))
        self.body = widgets.HTML(state.body)
        self.inputs = widgets.HTML(state.inputs)
        self.buttons: dict[str, widgets.Button] = {}
        for action in (*ACTIONS, "approve", "reject"):
            description, icon, tooltip, style = _BUTTONS[action]
            hidden = fixed and action not in state.actions
            button = widgets.Button(
                description=description,
                icon=icon,
                tooltip=tooltip,
                button_style=style,
                disabled=action not in self._enabled or hidden,
                layout=widgets.Layout(width="auto", flex="0 0 auto", display="none" if hidden else None),
                _dom_classes=(f"stigmer-{action}",),
            )
            button.on_click(functools.partial(self._on_click, action))
            self.buttons[action] = button
        self.cancel_button = self.buttons["cancel"]
        self.pause_button = self.buttons["pause"]
        self.resume_button = self.buttons["resume"]
        self.terminate_button = self.buttons["terminate"]
        self.rerun_button = self.buttons["rerun"]
        self.recover_button = self.buttons["recover"]
        self.approve_button = self.buttons["approve"]
        self.reject_button = self.buttons["reject"]
        self.approval = widgets.HTML(state.approval)
        self.comment = widgets.Text(
            placeholder="comment (optional)",
            layout=widgets.Layout(width="320px"),
            _dom_classes=("stigmer-comment",),
        )
        self.approval_panel = widgets.VBox(
            [
                self.approval,
                widgets.HBox(
                    [self.comment, self.approve_button, self.reject_button],
                    layout=widgets.Layout(align_items="center"),
                ),
            ],
            layout=widgets.Layout(display="none" if fixed else None),
            _dom_classes=("stigmer-approval",),
        )
        third, third_tip = _PANEL_LABELS["graph"] if graph is not None else _DETAILS_LABEL
        self.panel = widgets.ToggleButtons(
            options=[(_PANEL_LABELS[p][0], p) for p in PANELS[:2]] + [(third, "graph")],
            value=self._panel,
            tooltips=[_PANEL_LABELS[p][1] for p in PANELS[:2]] + [third_tip],
            style={"button_width": "auto"},
            layout=widgets.Layout(width="auto"),
            _dom_classes=("stigmer-panel-select",),
        )
        """Which panel the body shows: "tasks", "timeline" or "graph"."""
        self.node = widgets.Dropdown(
            options=state.nodes or (("latest task", LATEST),),
            value=LATEST,
            description="task",
            style={"description_width": "auto"},
            layout=widgets.Layout(width="auto", max_width="480px"),
            _dom_classes=("stigmer-node-select",),
        )
        """The task whose latest run the graph panel details (its reference; "" the latest task).
        Hidden by the body's CSS while another panel is shown."""
        self.panels = widgets.HBox(
            [self.panel, self.node],
            layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
            _dom_classes=("stigmer-panels",),
        )
        self.panel.observe(self._on_choice, names="value")
        self.node.observe(self._on_choice, names="value")
        self.started_output = widgets.Output()
        """Where the executions the Re-run and Recover buttons start are displayed."""
        self._header = widgets.HBox(
            [self.status, *(self.buttons[a] for a in ACTIONS)],
            layout=widgets.Layout(align_items="center", justify_content="space-between"),
            _dom_classes=("stigmer-header",),  # the status' CSS finds the buttons through it
        )
        self.widget = widgets.VBox(
            [self._header, self.approval_panel, self.panels, self.body, self.inputs, self.started_output],
            _dom_classes=("stigmer-view", view_class(snapshot.record.id)),
        )
        self._want_prompts(snapshot)

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

    @property
    def prompts(self) -> dict[str, Any]:
        """Prompts of the approval tasks seen so far, by task id."""
        with self._lock:
            return dict(self._prompts)

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
            "text/html": execution_html(
                self._snapshot, self._now(), prompts=self.prompts, graph=self._drawn_graph()
            ),
        }

    def _drawn_graph(self) -> str | None:
        """The graph drawn of the newest snapshot, if the graph panel drew it (never drawn here)."""
        with self._lock:
            drawn = self._graph
            if drawn is None or drawn[0] != self._graph_key(self._snapshot):
                return None
            return drawn[1]

    # --- updates ---------------------------------------------------------------------------------

    def offer(self, snapshot: ExecutionSnapshot) -> None:
        """Take a newer snapshot (any thread): the final one is applied at once, others coalesced."""
        with self._lock:
            if self._final_sent or not _is_newer(snapshot, self._snapshot):
                return
            self._snapshot = snapshot
        self._want_prompts(snapshot)
        self._want_graph()
        # The final one at once and synchronously: whoever waits on the execution then sees the
        # final state (unless the budget says wait: then as soon as it allows).
        if not snapshot.terminal or in_fresh_context(self.flush) is not None:
            self._wake()

    def _render(self, now: datetime) -> ViewState:
        """``render_execution`` of the newest snapshot with what this view knows (lock held)."""
        snapshot = self._snapshot
        phase = snapshot.record.phase.name
        notice = self._notice[1] if self._notice is not None and self._notice[0] == phase else ""
        requested = self._requested or (self._deciding[1] if self._deciding is not None else None)
        graph = self._graph
        return render_execution(
            snapshot,
            now,
            requested=requested,
            enabled=self._enabled,
            prompts=self._prompts,
            notice=notice,
            panel=self._panel,
            selected=self._selected,
            graph_svg=graph[1] if graph is not None else None,
            graph_pending=self._panel == "graph" and self._graph_source is not None and graph is None,
        )

    def _settle(self) -> None:
        """Forget requests the newest snapshot shows done (lock held)."""
        record = self._snapshot.record
        phase = record.phase.name
        requested = self._requested
        if (
            record.phase.terminal
            or (requested == "pause" and phase == "EXECUTION_PAUSED")
            or (requested == "resume" and phase != "EXECUTION_PAUSED")
        ):
            self._requested = None
        if self._deciding is not None and self._deciding[0] not in dict(pending_approvals(self._snapshot)):
            self._deciding = None
        if self._notice is not None and self._notice[0] != phase:
            self._notice = None

    def _changes(self, state: ViewState) -> list[tuple[widgets.Widget, dict[str, Any]]]:
        """Widgets whose traits differ from ``state`` (and the tooltips and comment asked for)."""
        wanted: list[tuple[widgets.Widget, str, Any]] = [
            (self.status, "value", state.status),
            (self.body, "value", state.body),
            (self.approval, "value", state.approval),
        ]
        if state.nodes:  # the graph panel's choices grow as new tasks start
            wanted.append((self.node, "options", state.nodes))
        wanted += [(self.buttons[a], "tooltip", tip) for a, tip in self._tooltips.items()]
        if self._clear_comment:
            wanted.append((self.comment, "value", ""))
        changed: dict[int, tuple[widgets.Widget, dict[str, Any]]] = {}
        for widget, trait, value in wanted:
            if getattr(widget, trait) != value:
                changed.setdefault(id(widget), (widget, {}))[1][trait] = value
        return list(changed.values())

    def _apply(self, changes: list[tuple[widgets.Widget, dict[str, Any]]]) -> None:
        """Assign the traits (lock held): one message per widget, whatever changed in it."""
        self._applying = True
        try:
            for widget, traits in changes:
                with widget.hold_sync():
                    for trait, value in traits.items():
                        setattr(widget, trait, value)
        finally:
            self._applying = False

    def flush(self) -> float | None:
        """Apply the newest state if the message budget allows. Returns the seconds until the next
        update is due (the budget frees up, or the clock ticks), or None once final."""
        with self._lock:
            if self._final_sent:
                return None
            self._settle()
            if self._graph_pending():
                # The final update waits for the graph of the final state (drawn on a helper
                # thread, which wakes this again), so that it goes out whole and nothing follows.
                return 0.25
            state = self._render(self._now())
            changes = self._changes(state)
            # What fits in the budget goes now, the status first (it carries the buttons' CSS);
            # the rest (an approval request, a tooltip) as soon as the budget allows.
            room = self.budget.room(final=state.terminal)
            if changes and room == 0:
                return self.budget.delay(1, final=state.terminal)
            now, later = changes[:room], changes[room:]
            self._apply(now)
            self.budget.spend(len(now))
            self.messages += len(now)
            self._clear_comment = self._clear_comment and any(w is self.comment for w, _ in later)
            self._state = state
            self._last_flush = self._clock()
            if later:
                return self.budget.delay(1, final=state.terminal)
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

    # --- panels -----------------------------------------------------------------------------------

    def _on_choice(self, _change: Any = None) -> None:
        """A panel or task picked in the frontend: shown by the next update (after the end, at once)."""
        with self._lock:
            panel = self.panel.value if self.panel.value in PANELS else "tasks"
            selected = self.node.value or LATEST
            if (panel, selected) == (self._panel, self._selected):
                return
            self._panel, self._selected = panel, selected
            final = self._final_sent
            applying = self._applying
        self._want_graph()
        if applying:  # new choices just sent moved the selection: shown by the next update
            self._wake()
        elif final:
            self._apply_now()
        elif self._loop is None:
            self.flush()
        else:
            self._wake()

    def _apply_now(self) -> None:
        """After the final update: apply a change the person asked for (one message per widget
        changed, one click at a time; nothing else changes any more)."""
        with self._lock:
            state = self._render(self._now())
            changes = self._changes(state)
            self._apply(changes)
            self.budget.spend(len(changes))
            self.messages += len(changes)
            self._state = state

    def _graph_key(self, snapshot: ExecutionSnapshot) -> tuple[Any, ...]:
        return (snapshot.record.phase, snapshot.record.last_seq, len(snapshot.tasks))

    def _graph_pending(self) -> bool:
        """The run has ended, the graph panel is shown, and its drawing of the end is not in yet
        (lock held). False when drawing failed: the end is never held back by the graph."""
        if self._graph_source is None or self._panel != "graph" or self._graph_failed:
            return False
        if not self._snapshot.terminal:
            return False
        if self._graph is not None and self._graph[0] == self._graph_key(self._snapshot):
            return False
        now = self._clock()
        self._held_since = self._held_since or now
        if now - self._held_since > _GRAPH_HOLD:
            return False  # a drawing this slow is not worth a late end: it follows on its own
        if not self._graphing:
            self._graphing = True
            _in_background(self._draw_graph, pool="graphs")
        return True

    def _want_graph(self) -> None:
        """Draw the graph of the newest snapshot on a helper thread, while the graph panel is shown
        and unless it is drawn already or a drawing is under way (that one looks again when done)."""
        if self._graph_source is None:
            return
        with self._lock:
            if self._panel != "graph" or self._graphing:
                return
            if self._graph is not None and self._graph[0] == self._graph_key(self._snapshot):
                return
            self._graphing = True
        _in_background(self._draw_graph, pool="graphs")

    def _draw_graph(self) -> None:
        """Draw until the drawing shows the newest snapshot, at most once per ``_GRAPH_INTERVAL``."""
        assert self._graph_source is not None
        while True:
            started = time.monotonic()
            snapshot = self._snapshot
            try:
                svg = self._graph_source(snapshot)
            except Exception:  # no graph, no harm: the task details still show
                level = logging.DEBUG if self._graph_failed else logging.WARNING
                log.log(level, "the graph of %s could not be drawn", self.execution_id, exc_info=True)
                self._graph_failed = True
                svg = None
            key = self._graph_key(snapshot)
            with self._lock:
                self._graph = (key, svg)
                again = self._panel == "graph" and key != self._graph_key(self._snapshot)
                self._graphing = again
                final = self._final_sent
            if final:
                self._apply_now()
            else:
                self._wake()
            if not again:
                return
            time.sleep(max(_GRAPH_INTERVAL - (time.monotonic() - started), 0.0))

    # --- approval prompts -------------------------------------------------------------------------

    def _want_prompts(self, snapshot: ExecutionSnapshot) -> None:
        """Look up the prompt of each new approval task, once and off the thread sending updates."""
        if self._prompt_source is None:
            return
        waiting = {task_id for task_id, _ in pending_approvals(snapshot)}
        with self._lock:
            new = waiting - self._prompts.keys() - self._prompts_asked
            if not new or self._looking:
                return
            self._prompts_asked |= new
            self._looking = True
        _in_background(self._look_up_prompts, new)

    def _look_up_prompts(self, wanted: set[str]) -> None:
        assert self._prompt_source is not None
        try:
            for attempt in range(_PROMPT_TRIES):
                try:
                    found = dict(self._prompt_source())
                except Exception:  # the lab stopped, or the history is busy: no prompt, no harm
                    log.debug("approval prompts of %s could not be read", self.execution_id, exc_info=True)
                    found = {}
                with self._lock:
                    self._prompts.update(found)
                if wanted <= found.keys() or attempt == _PROMPT_TRIES - 1:
                    break
                time.sleep(_PROMPT_RETRY)
        finally:
            with self._lock:
                self._looking = False
        self._wake()
        self._want_prompts(self._snapshot)  # approval tasks that began meanwhile

    # --- displays and actions ---------------------------------------------------------------------

    def _on_click(self, action: str, _button: Any = None) -> None:
        if action in ("rerun", "recover"):
            self._start_again(action)
        elif action in self._decisions:
            self._decide(action)
        else:
            self._steer(action)

    def _failed(self, action: str, exc: Exception) -> str:
        """Show a failed action as one line (header and tooltip), never a traceback."""
        text = f"{_LABELS.get(action, action)} failed: {_one_line(exc)}"
        if isinstance(exc, StigmerError):
            log.warning("%s of %s: %s", action, self.execution_id, text)
        else:
            log.warning("%s of %s failed", action, self.execution_id, exc_info=True)
        with self._lock:
            self._notice = (self._snapshot.record.phase.name, text)
            self._tooltips[action] = text
        self._wake()
        return text

    def _steer(self, action: str) -> None:
        """Pause, Resume, Cancel or Terminate: note the request at once, then make it."""
        call = self._calls[action]
        with self._lock:
            if call is None or self._final_sent or self._requested == action:
                return
            self._requested = action
            self._notice = None
            self._tooltips[action] = _BUTTONS[action][2]
        self._wake()
        try:
            call()
        except Exception as exc:  # one line in the view; the log has the rest
            with self._lock:
                if self._requested == action:
                    self._requested = None
            self._failed(action, exc)
        if self._loop is None:
            self.flush()

    def _decide(self, verdict: str) -> None:
        """Approve or Reject the approval request the panel shows, with the comment typed."""
        call = self._decisions[verdict]
        with self._lock:
            waiting = self._state.approvals or pending_approvals(self._snapshot)
            if call is None or self._final_sent or not waiting or self._deciding is not None:
                return
            task_id = waiting[0][0]
            self._deciding = (task_id, verdict)
            self._notice = None
            self._tooltips[verdict] = _BUTTONS[verdict][2]
            comment = self.comment.value.strip() or None
        self._wake()
        try:
            call(comment, task_id)
        except Exception as exc:
            with self._lock:
                self._deciding = None
            self._failed(verdict, exc)
        else:
            with self._lock:
                self._clear_comment = True
        if self._loop is None:
            self.flush()

    def _start_again(self, action: str) -> None:
        """Re-run or Recover: start a new execution and display it inside this view."""
        call = self._calls[action]
        with self._lock:
            if call is None or self._again_busy:
                return
            self._again_busy = True
        try:
            try:
                started = call()
            except Exception as exc:
                text = self._failed(action, exc)
                if self._final_sent:  # no update comes any more to carry the line: say it here
                    self.buttons[action].tooltip = text
                    self.started_output.append_stdout(text + "\n")
                return
            self.started.append(started)
            try:
                self._show(started)
            except Exception:
                log.warning("could not display %r", started, exc_info=True)
        finally:
            with self._lock:
                self._again_busy = False

    def _show_here(self, execution: Any) -> None:
        # A click runs in the kernel on the widget's comm message, which belongs to no cell:
        # what it displays goes to this view's Output area, or it would land in the log console.
        from IPython.display import display

        with self.started_output:
            display(execution)

    def close(self) -> None:
        """Stop following and close the widgets."""
        with self._lock:
            self._final_sent = True
            self._displays.clear()
        self._finish()
        for w in (
            self.status,
            self.body,
            self.inputs,
            *self.buttons.values(),
            self.approval,
            self.comment,
            self.panel,
            self.node,
            self.panels,
            *self.approval_panel.children,
            self.approval_panel,
            self.started_output,
            self._header,
            self.widget,
        ):
            w.close()


# --- one view per execution ---------------------------------------------------------------------

_views: weakref.WeakKeyDictionary[Lab, dict[str, ExecutionView]] = weakref.WeakKeyDictionary()
_views_lock = threading.Lock()


def approval_prompts(lab: Lab, execution_id: str) -> dict[str, Any]:
    """The prompts of ``execution_id``'s approval tasks by task id, as the run recorded them (a
    task the history has no request for yet is missing; one without a prompt maps to None)."""
    rows = lab.store.rows(
        "SELECT detail ->> 'task_id', detail -> 'prompt' FROM execution_events "
        "WHERE execution_id = ? AND kind = 'approval_requested'",
        [execution_id],
    )
    return {str(task_id): json.loads(prompt) if prompt else None for task_id, prompt in rows}


def graph_of(lab: Lab, snapshot: ExecutionSnapshot) -> str | None:
    """The graph panel's SVG of ``snapshot``: ``panels.render_graph`` with the document version
    the execution runs (None when it has none recorded, or no graph can be drawn)."""
    digest = snapshot.record.document_hash
    if not digest:
        return None
    return render_graph(snapshot, lab.service.version_document(digest))


def view_for(execution: Execution) -> ExecutionView:
    """The live view of ``execution``: one per execution and lab, following it until it ends."""
    lab = execution.lab
    with _views_lock:
        views = _views.setdefault(lab, {})
        view = views.get(execution.id)
        if view is None:
            view = ExecutionView(
                lab.service.snapshot(execution.id),
                cancel=execution.cancel,
                pause=lambda: execution.pause("paused from the notebook"),
                resume=lambda: execution.resume("resumed from the notebook"),
                terminate=lambda: execution.terminate(TERMINATE_REASON),
                rerun=execution.rerun,
                recover=execution.recover,
                approve=lambda comment, task: execution.approve(comment, task=task),
                reject=lambda comment, task: execution.reject(comment, task=task),
                prompts=lambda: approval_prompts(lab, execution.id),
                graph=functools.partial(graph_of, lab) if graph_available() else None,
            )
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
