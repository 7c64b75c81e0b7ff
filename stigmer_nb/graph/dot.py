"""Graphviz DOT: nested task lists as ``subgraph cluster_*``, nodes shaped by kind, coloured by state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._names import Names
from .model import END
from .states import node_colours, state_line, status_key

if TYPE_CHECKING:
    from .model import Group, Node, WorkflowGraph

__all__ = ["to_dot"]

_FONT = "Helvetica,Arial,sans-serif"
_SHAPES = {
    "set": ("box", ""),
    "call": ("box", "rounded"),
    "run": ("component", ""),
    "switch": ("diamond", ""),
    "wait": ("hexagon", ""),
    "emit": ("cds", ""),
    "listen": ("parallelogram", ""),
    "listen:approval": ("house", "bold"),
    "raise": ("octagon", ""),
}
_HEADER = ("box", "rounded,bold")
_ACCENTS = {"raise": "#991b1b", "listen:approval": "#7c3aed"}
"""Borders that mark a kind whatever the state (an error raised, a person asked)."""
_EDGES = {
    "flow": "",
    "back": 'style=dashed, color="#7c3aed", fontcolor="#7c3aed"',
    "error": 'style=dashed, color="#dc2626", fontcolor="#dc2626"',
    "retry": 'style=dashed, color="#d97706", fontcolor="#d97706"',
    "loop": 'style=dashed, color="#6b7280"',
    "skip": 'style=dotted, color="#6b7280"',
    "order": "style=invis",
}
_UPWARD = {"back", "loop", "retry"}
"""Edges to an earlier task: written head to tail with ``dir=back``, so that they rank their
target above their source like every other edge (``constraint=false`` edges made the layout up to
three times slower: Graphviz routes them across the clusters they skip)."""
_GROUP_BORDER = {"task": "#9ca3af", "catch": "#dc2626"}


def to_dot(graph: WorkflowGraph) -> str:
    """The graph as DOT text (``id``/``class`` on every task node: ``node-…``, ``stigmer-node``)."""
    lines = [
        f"digraph {_quote(graph.name)} {{",
        f'  graph [rankdir=TB, compound=true, newrank=true, nodesep=0.3, ranksep=0.35, pad=0.15, fontname="{_FONT}", '
        'fontsize=11, bgcolor="white"];',
        f'  node [fontname="{_FONT}", fontsize=10, shape=box, style=filled, fillcolor="white", '
        'color="#374151", fontcolor="#111827", margin="0.12,0.05", height=0.35];',
        f'  edge [fontname="{_FONT}", fontsize=9, color="#4b5563", fontcolor="#374151", arrowsize=0.7];',
    ]
    children: dict[str | None, list[Group]] = {}
    for group in graph.groups:
        children.setdefault(group.parent, []).append(group)
    members: dict[str | None, list[Node]] = {}
    for node in graph.nodes:
        members.setdefault(node.group, []).append(node)

    names = Names()  # DOT names without dashes: Graphviz would escape each in the SVG's titles

    def emit_group(group_id: str | None, indent: str) -> None:
        for node in members.get(group_id, ()):
            lines.append(indent + _node(graph, node, names[node.id]))
        for child in children.get(group_id, ()):
            lines.append(f"{indent}subgraph cluster_{names[child.id]} {{")
            lines.extend(indent + "  " + line for line in _group_attributes(graph, child))
            emit_group(child.id, indent + "  ")
            lines.append(indent + "}")

    emit_group(None, "  ")
    ranked: set[str] = set()  # nodes with an edge ranking another node below them
    for edge in graph.edges:
        attributes = []
        if edge.label:
            attributes.append(f"label={_quote(' ' + edge.label + ' ')}")
        if _EDGES.get(edge.style):
            attributes.append(_EDGES[edge.style])
        tail, head = edge.source, edge.target
        if edge.style in _UPWARD:
            tail, head = head, tail
            attributes.insert(0, "dir=back")
        ranked.add(tail)
        rest = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {names[tail]} -> {names[head]}{rest};")
    # The end below the last dead end too (a raise, a retry going round), when the last task does
    # not run on to it. One such edge only: one per dead end, each spanning many ranks, tripled the
    # layout's time.
    dead = [node for node in graph.nodes if node.id not in ranked and node.id != END]
    if dead:
        lines.append(f"  {names[dead[-1].id]} -> {names[END]} [style=invis];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node(graph: WorkflowGraph, node: Node, name: str) -> str:
    if node.role == "start":
        return f'{name} [id={_quote(node.id)}, label="start", shape=circle, width=0.45, fixedsize=true, fontsize=9];'
    if node.role == "end":
        return f'{name} [id={_quote(node.id)}, label="end", shape=doublecircle, width=0.4, fixedsize=true, fontsize=9];'
    if node.role == "join":
        if node.type == "fork":  # a synchronisation bar
            return (
                f'{name} [id={_quote(node.id)}, label="", tooltip={_quote(node.text)}, shape=box, '
                'style=filled, fillcolor="#374151", height=0.06, width=1.2, fixedsize=true];'
            )
        return (
            f'{name} [id={_quote(node.id)}, label="", tooltip={_quote(node.text)}, shape=circle, '
            'style=filled, fillcolor="#9ca3af", color="#9ca3af", width=0.14, height=0.14, fixedsize=true];'
        )
    coloured = graph.states is not None
    state = graph.states.get(node.ref) if graph.states is not None and node.ref else None
    fill, border, text = node_colours(state, coloured)
    shape, style = _HEADER if node.header else _SHAPES.get(node.kind) or _SHAPES.get(node.type, ("box", ""))
    styles = ["filled", *[s for s in style.split(",") if s]]
    if node.condition is not None:
        styles.append("dashed")
    if not coloured:
        border = _ACCENTS.get(node.kind) or _ACCENTS.get(node.type) or border
    label = [node.text, node.detail, f"if {node.condition}" if node.condition else "", state_line(state)]
    key = status_key(state, coloured)
    classes = "stigmer-node" + (f" stigmer-{key}" if key else "") + f" stigmer-kind-{node.type}"
    if node.kind == "listen:approval":
        classes += " stigmer-approval"
    tooltip = node.ref or ""
    if state is not None:
        tooltip += f"\n{state.status}"
    attributes = [
        f"id={_quote(node.id)}",
        f"class={_quote(classes)}",
        f"label={_quote(chr(10).join(line for line in label if line))}",
        f"tooltip={_quote(tooltip)}",
        f"shape={shape}",
        f"style={_quote(','.join(styles))}",
        f"fillcolor={_quote(fill)}",
        f"color={_quote(border)}",
        f"fontcolor={_quote(text)}",
    ]
    if node.kind in _ACCENTS or node.header:
        attributes.append("penwidth=1.6")
    return f"{name} [{', '.join(attributes)}];"


def _group_attributes(graph: WorkflowGraph, group: Group) -> list[str]:
    coloured = graph.states is not None
    border = _GROUP_BORDER.get(group.role, "#9ca3af")
    if coloured and group.role == "task" and group.ref is not None:
        state = graph.states.get(group.ref) if graph.states is not None else None
        border = node_colours(state, True)[1]
    style = "rounded,dashed" if group.role == "catch" else "rounded"
    return [
        f"id={_quote(group.id)};",
        f'class="stigmer-group stigmer-group-{group.role}";',
        f"label={_quote(group.label)};",
        'labeljust="l"; fontsize=10;',
        f'style="{style}"; color={_quote(border)}; fontcolor="#374151";',
    ]


def _quote(text: str) -> str:
    """A DOT double-quoted string (backslashes kept literal: Graphviz reads ``\\n``, ``\\N`` …)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
