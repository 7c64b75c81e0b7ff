"""The view's third panel: the workflow graph (through one hook) and the details of a chosen task.

``render_graph`` is the only place that reaches for ``stigmer_nb.graph``; until that package
exists it returns None and the panel shows the task selector and details alone (labelled
"Details" instead of "Graph"). Everything else here is pure HTML from a snapshot.
"""

from __future__ import annotations

import functools
import html
import importlib
import importlib.util
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .style import BORDER, ERROR, MUTED, STATUS_COLOURS, ink, json_html
from .timeline import format_elapsed

if TYPE_CHECKING:
    from ..service import ExecutionSnapshot, TaskState

__all__ = [
    "GRAPH_MODULE",
    "LATEST",
    "MAX_NODES",
    "PANELS",
    "details_html",
    "graph_available",
    "graph_panel_html",
    "latest_run",
    "node_options",
    "render_graph",
]

log = logging.getLogger(__name__)

PANELS = ("tasks", "timeline", "graph")
"""What the body shows below the progress bar, as the view's panel selector names them."""
GRAPH_MODULE = "stigmer_nb.graph"
LATEST = ""
"""Node selector value meaning "the task running now, else the last one that ran"."""
MAX_NODES = 300
"""Task references the selector offers at most (a document rarely has that many tasks)."""
_JSON_LIMIT = 2000


@functools.cache
def graph_available() -> bool:
    """True when ``stigmer_nb.graph`` is installed (checked once, without importing it)."""
    return importlib.util.find_spec(GRAPH_MODULE) is not None


def render_graph(snapshot: ExecutionSnapshot, document: Mapping[str, Any]) -> str | None:
    """The graph panel's SVG: ``stigmer_nb.graph.for_execution(document, snapshot.tasks).svg``,
    the document's tasks as nodes coloured by the status of their latest run; None while that
    package (or what it needs) is missing.

    ``document`` is the workflow document the execution runs (``lab.service.version_document(
    record.document_hash)``). Drawing may take a while (Graphviz): the view calls this on a helper
    thread, only while its Graph panel is shown and only when a task changed status.
    """
    try:
        graph = importlib.import_module(GRAPH_MODULE)
    except ImportError:
        log.debug("no graph panel: %s cannot be imported", GRAPH_MODULE, exc_info=True)
        return None
    svg = graph.for_execution(document, snapshot.tasks).svg
    return str(svg) if svg else None


def node_options(snapshot: ExecutionSnapshot) -> tuple[tuple[str, str], ...]:
    """Choices of the node selector: "latest task", then each task reference that ran, in the
    order they first started (label ``name · reference``, value the reference)."""
    names: dict[str, str] = {}
    for t in snapshot.tasks:
        if t.reference not in names:
            names[t.reference] = t.name
            if len(names) >= MAX_NODES:
                break
    return (("latest task", LATEST), *((f"{name} · {ref}", ref) for ref, name in names.items()))


def latest_run(snapshot: ExecutionSnapshot, reference: str = LATEST) -> TaskState | None:
    """The latest run of the task at ``reference``; for ``LATEST``, the run started last among
    those in progress, else the run started last."""
    tasks = snapshot.tasks
    if reference == LATEST:
        running = [t for t in tasks if t.status == "WORKFLOW_TASK_IN_PROGRESS"]
        pool = running or list(tasks)
    else:
        pool = [t for t in tasks if t.reference == reference]
    return pool[-1] if pool else None


def _section(title: str, value: Any, *, opened: bool, style: str = "") -> str:
    text = json_html(value, _JSON_LIMIT, hint="execution.tasks has all of it")
    is_open = " open" if opened and text.count("\n") < 25 else ""
    return (
        f"<details class='stigmer-detail-{title}'{is_open}><summary style='cursor:pointer;{style}'>"
        f"{title}</summary><pre style='margin:2px 0;white-space:pre-wrap'>{text}</pre></details>"
    )


def details_html(snapshot: ExecutionSnapshot, reference: str = LATEST) -> str:
    """The latest run of the task at ``reference``: status, attempt, which run of how many, when,
    and its input, output and error."""
    task = latest_run(snapshot, reference)
    if task is None:
        what = "no task has run yet" if reference == LATEST else f"{html.escape(reference)} has not run yet"
        return f"<div class='stigmer-details' style='{MUTED};margin-top:4px'>{what}</div>"
    runs = [t for t in snapshot.tasks if t.reference == task.reference]
    colour = STATUS_COLOURS.get(task.status, "#6b7280")
    status = task.status.removeprefix("WORKFLOW_TASK_")
    facts = [f"<span style='{ink(colour)};font-weight:600'>{status}</span>"]
    if task.attempt > 1:
        facts.append(f"attempt {task.attempt}")
    if len(runs) > 1:
        facts.append(f"run {runs.index(task) + 1} of {len(runs)}")
    if task.duration_ms is not None:
        facts.append(format_elapsed(task.duration_ms / 1000.0, running=False))
    if task.started_at is not None:
        facts.append(f"started {task.started_at:%H:%M:%S.%f}"[:-3] + " UTC")
    parts = [
        f"<div class='stigmer-details' data-reference='{html.escape(task.reference, quote=True)}' "
        f"style='margin-top:4px;border-left:3px solid {colour};padding:2px 8px'>",
        f"<div><b>{html.escape(task.name)}</b> <span style='{MUTED}'>{html.escape(task.kind)}</span> "
        f"<code style='{MUTED}'>{html.escape(task.reference)}</code></div>",
        f"<div>{' · '.join(facts)}</div>",
        _section("input", task.input, opened=False),
    ]
    if task.output is not None or task.status == "WORKFLOW_TASK_COMPLETED":
        parts.append(_section("output", task.output, opened=True))
    if task.error:
        parts.append(_section("error", task.error, opened=True, style=ink(ERROR)))
    parts.append("</div>")
    return "".join(parts)


def graph_panel_html(
    snapshot: ExecutionSnapshot, reference: str = LATEST, *, svg: str | None = None, pending: bool = False
) -> str:
    """The graph (when ``svg``; "drawing…" while ``pending``) above the chosen task's details."""
    graph = ""
    if svg:
        graph = (
            f"<div class='stigmer-graph' style='overflow:auto;max-height:480px;border:1px solid {BORDER};"
            f"border-radius:4px;margin-top:4px'>{svg}</div>"
        )
    elif pending:
        graph = f"<div class='stigmer-graph' style='{MUTED};margin-top:4px'>drawing the graph…</div>"
    return f"<div class='stigmer-graph-panel'>{graph}{details_html(snapshot, reference)}</div>"
