"""A DSL document as a graph: one node per task, nested task lists as groups, flow as edges.

Nodes are keyed by the task's reference (its JSON pointer, what ``task_updates.reference``
holds), so run states can be laid over them. A task with a task list of its own (``do``,
``for``, ``fork``, ``try``, ``listen`` with ``foreach.do``) is a group holding a header node
(the task itself) and its tasks; loops and forks also get a join node where their runs meet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dsl.model import Task, TaskList, TrySpec, Workflow
from ._describe import condition, describe, error_filter
from .states import NodeState, states_from_tasks

if TYPE_CHECKING:
    from ..service import TaskState

__all__ = [
    "EDGE_STYLES",
    "END",
    "START",
    "Edge",
    "Group",
    "Node",
    "WorkflowGraph",
    "css_id",
    "for_document",
    "for_execution",
]

START, END = "wf-start", "wf-end"
EDGE_STYLES = ("flow", "back", "error", "retry", "loop", "skip", "order")
"""How an edge is drawn: ``back`` (a jump to an earlier task), ``error`` (into a catch),
``retry`` (a catch going round again), ``loop`` (the next iteration), ``skip`` (``if`` false),
``order`` (not drawn: keeps a task that nothing leads to below the one before it)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class Node:
    """A box of the diagram: a task, the start, the end, or where a loop's or fork's runs meet."""

    id: str
    """Stable and CSS-safe: ``node-do-1-check`` for the task at ``/do/1/check``."""
    role: str
    """``task``, ``start``, ``end`` or ``join``."""
    text: str
    """The first line: the task's name (a group's header: what the task does)."""
    detail: str = ""
    """The second line: what the task does (``call:http GET``), empty for a group's header."""
    kind: str = ""
    """The task's kind as progress reports it (``set``, ``call:http``, ``listen:approval`` …)."""
    type: str = ""
    """The task's type (``set``, ``call``, ``for`` …); for a join, the type of its task."""
    ref: str | None = None
    """The task's reference (JSON pointer); None for start, end and joins."""
    condition: str | None = None
    """The task's ``if``, shortened."""
    group: str | None = None
    """The id of the innermost group holding it."""
    header: bool = False
    """The task whose group this is (drawn at its top)."""


@dataclass(frozen=True, slots=True)
class Edge:
    """An arrow: sequential flow, a switch case, a flow directive, an error or a loop."""

    source: str
    target: str
    label: str = ""
    style: str = "flow"
    """One of ``EDGE_STYLES``."""


@dataclass(frozen=True, slots=True)
class Group:
    """A nested task list drawn as a box around its tasks (a Graphviz cluster, a Mermaid subgraph)."""

    id: str
    label: str
    parent: str | None
    ref: str | None
    """The reference of the task it belongs to."""
    role: str = "task"
    """``task`` (the task's own group) or ``catch`` (a try's handler)."""
    kind: str = ""


@dataclass(frozen=True, eq=False)
class WorkflowGraph:
    """A document drawn as a graph, optionally with the state of a run laid over it.

    ``mermaid``, ``dot`` and ``svg`` render it; in a notebook it shows as the SVG (Graphviz).
    """

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    groups: tuple[Group, ...]
    states: Mapping[str, NodeState] | None = None
    """Per task reference; None for the document alone (nothing is coloured)."""

    @classmethod
    def from_workflow(cls, workflow: Workflow) -> WorkflowGraph:
        """The graph of a compiled document."""
        return _Builder(workflow).build()

    def with_states(self, states: Mapping[str, NodeState] | None) -> WorkflowGraph:
        """The same graph coloured by ``states`` (references not in the graph are left out)."""
        if states is None:
            return replace(self, states=None)
        refs = self.refs
        return replace(self, states={ref: state for ref, state in states.items() if ref in refs})

    @cached_property
    def refs(self) -> frozenset[str]:
        """The references of the tasks drawn."""
        return frozenset(node.ref for node in self.nodes if node.ref is not None)

    def node(self, ref: str) -> Node:
        """The node of the task at ``ref``."""
        for node in self.nodes:
            if node.ref == ref:
                return node
        raise KeyError(ref)

    @cached_property
    def mermaid(self) -> str:
        """Mermaid ``flowchart TD`` text (JupyterLab 4 renders ``text/vnd.mermaid``)."""
        from .mermaid import to_mermaid

        return to_mermaid(self)

    @cached_property
    def dot(self) -> str:
        """Graphviz DOT text."""
        from .dot import to_dot

        return to_dot(self)

    @cached_property
    def svg(self) -> str:
        """SVG laid out by Graphviz; each task node is ``<g id="node-…" class="node stigmer-node …">``."""
        from .svg import render_svg

        return render_svg(self.dot)

    def __repr__(self) -> str:
        tasks = len(self.refs)
        coloured = "" if self.states is None else f", {len(self.states)} with run states"
        return f"<WorkflowGraph {self.name}: {tasks} task{'s' * (tasks != 1)}{coloured}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # The inline SVG (text/html) is what JupyterLab shows: its nodes are in the page, so their
        # ids and colours can be read. image/svg+xml is what other front ends and nbconvert show
        # (JupyterLab would put it in an <img>). Mermaid only when asked for: JupyterLab ranks it
        # above SVG, so offering it would replace the Graphviz drawing.
        from .svg import html_figure

        def wanted(mime: str) -> bool:
            return (not include or mime in include) and not (exclude and mime in exclude)

        bundle: dict[str, Any] = {"text/plain": repr(self)}
        if wanted("text/html") or wanted("image/svg+xml"):
            svg = self.svg
            if wanted("text/html"):
                bundle["text/html"] = html_figure(svg, repr(self))
            if wanted("image/svg+xml"):
                bundle["image/svg+xml"] = svg
        if include and "text/vnd.mermaid" in include and wanted("text/vnd.mermaid"):
            bundle["text/vnd.mermaid"] = self.mermaid
        return bundle


def for_document(source: str | bytes | Path | Mapping[str, Any] | Workflow) -> WorkflowGraph:
    """The graph of a document: YAML/JSON text, a path, a dict (a Stigmer WorkflowSpec too) or a
    compiled ``Workflow``. Raises ``DSLValidationError`` listing every problem of an invalid one."""
    if isinstance(source, Workflow):
        return WorkflowGraph.from_workflow(source)
    from ..dsl.document import is_workflow_spec, load_source
    from ..dsl.validate import compile_document

    loaded = load_source(source)
    if is_workflow_spec(loaded.data):
        from ..runner.converter import convert_spec

        loaded = load_source(convert_spec(loaded.data))
    return WorkflowGraph.from_workflow(compile_document(loaded))


def for_execution(
    document: str | bytes | Path | Mapping[str, Any] | Workflow | WorkflowGraph,
    task_states: Iterable[TaskState | Mapping[str, Any]] | Any,
) -> WorkflowGraph:
    """The graph of ``document`` coloured by the task runs of one execution (the service's
    ``TaskState`` objects, or rows with ``reference``, ``status``, ``attempt``).

    A dict is taken as the document the execution runs (``service.version_document(...)``),
    validated when it was submitted: it is compiled without its jq again, and once per process.
    To colour one graph by many snapshots, pass the ``WorkflowGraph`` itself.
    """
    if isinstance(document, WorkflowGraph):
        graph = document
    elif isinstance(document, Mapping) and "do" in document:
        graph = _submitted(document)
    else:
        graph = for_document(document)
    return graph.with_states(states_from_tasks(task_states))


def _submitted(document: Mapping[str, Any]) -> WorkflowGraph:
    from ..dsl.validate import compile_checked

    compiled = compile_checked(document)  # cached per document
    if not isinstance(compiled, Workflow):
        from ..errors import DSLValidationError

        raise DSLValidationError(compiled, source="document")
    return WorkflowGraph.from_workflow(compiled)


def css_id(prefix: str, ref: str) -> str:
    """``/do/1/check`` → ``node-do-1-check``: letters, digits, ``-`` and ``_`` only."""
    body = "-".join(part for part in ref.split("/") if part)
    body = _UNSAFE.sub(lambda m: f"_{ord(m.group()):x}_", body)
    return f"{prefix}-{body}"


# --- building -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Out:
    """A way out of a task: from ``source``, where its directive (None: continue) leads."""

    source: str
    directive: str | None
    label: str = ""
    style: str = "flow"


@dataclass(slots=True)
class _Part:
    """A task as drawn: the node flow enters it by, and its ways out."""

    entry: str
    outs: list[_Out] = field(default_factory=list)


class _Builder:
    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.groups: list[Group] = []
        self._ids: set[str] = set()
        self._reached: set[str] = set()

    def build(self) -> WorkflowGraph:
        meta = self.workflow.document.get("document")
        name = str(meta.get("name", "workflow")) if isinstance(meta, Mapping) else "workflow"
        self.nodes.append(Node(START, "start", "start"))
        self._ids.add(START)
        self._ids.add(END)
        entry, exits = self._list(self.workflow.do, None)
        self.edge(START, entry or END)
        for out in exits:
            self.edge(out.source, END, out.label, out.style)
        self.nodes.append(Node(END, "end", "end"))
        # Edges are made inside out (a list's exits are known once it is drawn): list them in the
        # order of their source nodes, which reads top down.
        order = {node.id: index for index, node in enumerate(self.nodes)}
        edges = sorted(self.edges, key=lambda edge: order[edge.source])
        return WorkflowGraph(name, tuple(self.nodes), tuple(edges), tuple(self.groups))

    # --- small helpers ------------------------------------------------------------------------

    def unique(self, candidate: str) -> str:
        found, n = candidate, 1
        while found in self._ids:
            n += 1
            found = f"{candidate}-{n}"
        self._ids.add(found)
        return found

    def edge(self, source: str, target: str, label: str = "", style: str = "flow") -> None:
        self.edges.append(Edge(source, target, label, style))
        self._reached.add(target)

    def group(self, task: Task, parent: str | None, *, role: str = "task", suffix: str = "") -> str:
        gid = self.unique(css_id("group", task.ref) + suffix)
        label = task.name if role == "task" else "catch"
        if role == "catch" and isinstance(task.spec, TrySpec) and task.spec.catch.as_ != "error":
            label += f" as {task.spec.catch.as_}"
        self.groups.append(Group(gid, label, parent, task.ref, role, task.kind))
        return gid

    def task_node(self, task: Task, group: str | None, *, header: bool = False) -> str:
        nid = self.unique(css_id("node", task.ref))
        what = describe(task)
        text, detail = (what, "") if header else (task.name, what)
        cond = condition(task.if_) if task.if_ is not None else None
        self.nodes.append(
            Node(nid, "task", text, detail, task.kind, task.type, task.ref, cond, group, header)
        )
        return nid

    def join(self, task: Task, group: str, text: str) -> str:
        nid = self.unique(css_id("join", task.ref))
        self.nodes.append(Node(nid, "join", text, type=task.type, group=group))
        return nid

    # --- lists and tasks ----------------------------------------------------------------------

    def _list(self, tasks: TaskList, group: str | None) -> tuple[str | None, list[_Out]]:
        """Draw a task list; its first node and the ways out of the list (to what follows it)."""
        parts = [self._task(task, group) for task in tasks.tasks]
        exits: list[_Out] = []
        last = len(parts) - 1
        for index, part in enumerate(parts):
            for out in part.outs:
                directive = out.directive
                if directive is None or directive == "continue":
                    if index < last:
                        self.edge(out.source, parts[index + 1].entry, out.label, out.style)
                    else:
                        exits.append(out)
                elif directive == "exit":
                    exits.append(replace(out, label=out.label or "exit"))
                elif directive == "end":
                    self.edge(out.source, END, out.label or "end", out.style)
                elif directive in tasks.positions:
                    target = tasks.positions[directive]
                    style = "back" if target <= index and out.style == "flow" else out.style
                    self.edge(out.source, parts[target].entry, out.label, style)
        for before, part in pairwise(parts):
            if part.entry not in self._reached:  # nothing leads to it: still draw it in its place
                self.edge(before.entry, part.entry, style="order")
        return (parts[0].entry if parts else None), exits

    def _task(self, task: Task, group: str | None) -> _Part:
        build = {
            "do": self._do,
            "for": self._for,
            "fork": self._fork,
            "try": self._try,
            "switch": self._switch,
            "raise": self._raise,
        }.get(task.type)
        if task.type == "listen" and task.spec.foreach is not None and task.spec.foreach.do is not None:
            build = self._listen_foreach
        part = build(task, group) if build is not None else self._simple(task, group)
        if task.if_ is not None and not any(
            out.source == part.entry and out.directive in (None, "continue") for out in part.outs
        ):
            # Skipped, a task goes on to the next one whatever its `then` says.
            part.outs.append(_Out(part.entry, None, "skip", "skip"))
        return part

    def _simple(self, task: Task, group: str | None) -> _Part:
        node = self.task_node(task, group)
        return _Part(node, [_Out(node, task.then)])

    def _raise(self, task: Task, group: str | None) -> _Part:
        # The error goes to the nearest catch (drawn from the try) or ends the run: no way out here.
        return _Part(self.task_node(task, group))

    def _switch(self, task: Task, group: str | None) -> _Part:
        node = self.task_node(task, group)
        outs = []
        has_default = False
        for case in task.spec.cases:
            if case.when is None:
                has_default = True
                label = "default"
            else:
                label = condition(case.when)
            outs.append(_Out(node, case.then, label))
        if not has_default:
            outs.append(_Out(node, task.then, "no match"))
        return _Part(node, outs)

    def _do(self, task: Task, group: str | None) -> _Part:
        inner = self.group(task, group)
        header = self.task_node(task, inner, header=True)
        entry, exits = self._list(task.spec.do, inner)
        if entry is None:
            return _Part(header, [_Out(header, task.then)])
        self.edge(header, entry)
        return _Part(header, [_Out(o.source, task.then, o.label, o.style) for o in exits])

    def _loop(self, task: Task, group: str | None, tasks: TaskList, again: str) -> _Part:
        inner = self.group(task, group)
        header = self.task_node(task, inner, header=True)
        entry, exits = self._list(tasks, inner)
        if entry is None:
            return _Part(header, [_Out(header, task.then)])
        self.edge(header, entry)
        if not exits:  # every iteration leaves the workflow: only running none goes on
            return _Part(header, [_Out(header, task.then, "done")])
        join = self.join(task, inner, "loop")
        for out in exits:
            self.edge(out.source, join, out.label, out.style)
        self.edge(join, header, again, "loop")
        return _Part(header, [_Out(join, task.then)])

    def _for(self, task: Task, group: str | None) -> _Part:
        label = f"next · while {condition(task.spec.while_)}" if task.spec.while_ is not None else "next"
        return self._loop(task, group, task.spec.do, label)

    def _listen_foreach(self, task: Task, group: str | None) -> _Part:
        return self._loop(task, group, task.spec.foreach.do, "next event")

    def _fork(self, task: Task, group: str | None) -> _Part:
        inner = self.group(task, group)
        header = self.task_node(task, inner, header=True)
        branches = [self._task(branch, inner) for branch in task.spec.branches.tasks]
        if not branches:
            return _Part(header, [_Out(header, task.then)])
        join = self.join(task, inner, "first" if task.spec.compete else "join")
        for branch in branches:
            self.edge(header, branch.entry)
            for out in branch.outs:  # a branch's own `then` is not followed
                self.edge(out.source, join, out.label, out.style)
        return _Part(header, [_Out(join, task.then)])

    def _try(self, task: Task, group: str | None) -> _Part:
        spec: TrySpec = task.spec
        inner = self.group(task, group)
        header = self.task_node(task, inner, header=True)
        entry, exits = self._list(spec.try_, inner)
        if entry is None:
            return _Part(header, [_Out(header, task.then)])
        self.edge(header, entry)
        outs = [_Out(o.source, task.then, o.label, o.style) for o in exits]
        caught = error_filter(spec)
        retry = spec.catch.retry is not None
        handler = spec.catch.do
        if handler is not None and handler.tasks:
            catch_group = self.group(task, inner, role="catch", suffix="-catch")
            catch_entry, catch_exits = self._list(handler, catch_group)
            self.edge(header, catch_entry or header, caught, "error")
            for out in catch_exits:
                if retry:  # the handler runs before each retry; once retries run out, the error goes on
                    self.edge(out.source, entry, "retry", "retry")
                else:
                    outs.append(_Out(out.source, task.then, out.label, out.style))
        elif not retry:  # caught and dropped: the try ends there
            outs.append(_Out(header, task.then, caught, "error"))
        return _Part(header, outs)
