"""Run states laid over a graph: per task reference, its status, how often it ran, its attempt."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..widgets.render import STATUS_COLOURS

if TYPE_CHECKING:
    from ..service import TaskState

__all__ = ["NOT_STARTED", "TIMES", "NodeState", "node_colours", "state_line", "states_from_tasks"]

NOT_STARTED = "NOT_STARTED"
"""The colour key of a task a coloured graph has no run of."""
TIMES = "\u00d7"
"""The multiplication sign before a task's run count (×3)."""  # noqa: RUF001
_PREFIX = "WORKFLOW_TASK_"
_IN_PROGRESS = "WORKFLOW_TASK_IN_PROGRESS"
# (fill, border, text) per status: the live view's colours, white text on them.
_COLOURS: dict[str, tuple[str, str, str]] = {
    status: (colour, colour, "#ffffff") for status, colour in STATUS_COLOURS.items()
}
_COLOURS[NOT_STARTED] = ("#f9fafb", "#d1d5db", "#9ca3af")
_PLAIN = ("#ffffff", "#374151", "#111827")


@dataclass(frozen=True, slots=True)
class NodeState:
    """What the runs of one task reference add up to so far."""

    status: str
    """A ``WORKFLOW_TASK_*`` name: the latest run's (in progress while any run is)."""
    runs: int = 1
    """Runs of the task in its latest attempt: loop iterations (a retry is an attempt, not a run)."""
    attempt: int = 1
    """The highest attempt (a try's ``catch.retry`` runs its tasks again)."""

    def __post_init__(self) -> None:
        status = str(getattr(self.status, "name", self.status)).upper()
        if not status.startswith(_PREFIX) and status != NOT_STARTED:
            status = _PREFIX + status  # "failed" → WORKFLOW_TASK_FAILED
        object.__setattr__(self, "status", status)


def states_from_tasks(task_states: Iterable[TaskState | Mapping[str, Any]] | Any) -> dict[str, NodeState]:
    """``{reference: NodeState}`` from the service's ``TaskState`` objects (an execution snapshot's
    ``tasks``), or rows with ``reference``, ``status``, ``attempt`` (a ``run.tasks`` DataFrame too).
    A graph ignores references it does not draw (the tasks of a ``run: workflow`` child)."""
    if hasattr(task_states, "to_dict"):  # a DataFrame: its rows
        task_states = task_states.to_dict("records")
    runs: dict[str, list[tuple[int, Any, int, str]]] = {}
    for position, task in enumerate(task_states):
        reference = _field(task, "reference")
        status = _field(task, "status")
        if not reference or status is None:
            continue
        attempt = int(_field(task, "attempt") or 1)
        seq = _field(task, "first_seq")
        order = (seq if isinstance(seq, int) else position, position)
        runs.setdefault(str(reference), []).append((attempt, order, position, str(status)))
    states: dict[str, NodeState] = {}
    for reference, found in runs.items():
        attempt = max(run[0] for run in found)
        latest = max(found, key=lambda run: run[1])
        running = any(_name(run[3]) == _IN_PROGRESS for run in found)
        status = _IN_PROGRESS if running else latest[3]
        states[reference] = NodeState(status, sum(1 for run in found if run[0] == attempt), attempt)
    return states


def node_colours(state: NodeState | None, coloured: bool) -> tuple[str, str, str]:
    """(fill, border, text) of a node: by status when the graph has run states, else plain."""
    if not coloured:
        return _PLAIN
    if state is None:
        return _COLOURS[NOT_STARTED]
    return _COLOURS.get(state.status, _COLOURS[NOT_STARTED])


def status_key(state: NodeState | None, coloured: bool) -> str | None:
    """``completed``, ``failed``, ``not-started`` …: a CSS class and Mermaid class suffix."""
    if not coloured:
        return None
    if state is None:
        return "not-started"
    return state.status.removeprefix(_PREFIX).lower().replace("_", "-")


def state_line(state: NodeState | None) -> str:
    """``×3 · attempt 2``: the iterations and attempt of a task that ran more than once."""  # noqa: RUF002
    if state is None:
        return ""
    parts = []
    if state.runs > 1:
        parts.append(f"{TIMES}{state.runs}")
    if state.attempt > 1:
        parts.append(f"attempt {state.attempt}")
    return " · ".join(parts)


def _field(task: Any, name: str) -> Any:
    if isinstance(task, Mapping):
        return task.get(name)
    return getattr(task, name, None)


def _name(status: str) -> str:
    status = status.upper()
    return status if status.startswith(_PREFIX) else _PREFIX + status
