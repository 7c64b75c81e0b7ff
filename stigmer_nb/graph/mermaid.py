"""Mermaid ``flowchart TD``: nested task lists as ``subgraph``s, nodes shaped by kind, coloured by state."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ._names import Names
from .states import NodeState, node_colours, state_line, status_key

if TYPE_CHECKING:
    from .model import Group, Node, WorkflowGraph

__all__ = ["to_mermaid"]

# (open, close) around the quoted label.
_SHAPES = {
    "set": ("[", "]"),
    "call": ("(", ")"),
    "run": ("[[", "]]"),
    "switch": ("{", "}"),
    "wait": ("{{", "}}"),
    "emit": (">", "]"),
    "listen": ("[/", "/]"),
    "listen:approval": ("[/", "\\]"),
    "raise": ("[\\", "/]"),
}
_HEADER = ("([", "])")
_ROLES = {"start": ("((", "))"), "end": ("(((", ")))"), "join": ("((", "))")}
_ARROWS = {
    "flow": "-->",
    "back": "-.->",
    "error": "-.->",
    "retry": "-.->",
    "loop": "-.->",
    "skip": "-.->",
    "order": "~~~",
}
_EDGE_COLOURS = {
    "back": "#7c3aed",
    "error": "#dc2626",
    "retry": "#d97706",
    "loop": "#6b7280",
    "skip": "#6b7280",
}
_ACCENTS = {"raise": "#991b1b", "listen:approval": "#7c3aed"}
_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;"}
_SPECIAL = re.compile(r'[#"<>&`]')


def to_mermaid(graph: WorkflowGraph) -> str:
    """The graph as Mermaid text; task nodes carry ``id``-like names (``node_do_1_check``)."""
    ids = Names()
    lines = ["flowchart TD"]
    children: dict[str | None, list[Group]] = {}
    for group in graph.groups:
        children.setdefault(group.parent, []).append(group)
    members: dict[str | None, list[Node]] = {}
    for node in graph.nodes:
        members.setdefault(node.group, []).append(node)
    coloured = graph.states is not None
    styles: list[str] = []
    used: set[str] = set()

    def emit_group(group_id: str | None, indent: str) -> None:
        for node in members.get(group_id, ()):
            lines.append(indent + _node(graph, node, ids))
            key, style = _node_style(graph, node, coloured)
            if key:
                used.add(key)
                styles.append(f"  class {ids[node.id]} {_class(key)}")
            if style:
                styles.append(f"  style {ids[node.id]} {style}")
        for child in children.get(group_id, ()):
            lines.append(f'{indent}subgraph {ids[child.id]} ["{_text(child.label)}"]')
            lines.append(f"{indent}  direction TB")
            emit_group(child.id, indent + "  ")
            lines.append(f"{indent}end")
            styles.append(f"  style {ids[child.id]} {_group_style(graph, child, coloured)}")

    emit_group(None, "  ")
    links: list[str] = []
    for index, edge in enumerate(graph.edges):
        arrow = _ARROWS.get(edge.style, "-->")
        label = f'|"{_text(edge.label)}"|' if edge.label else ""
        lines.append(f"  {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
        if edge.style in _EDGE_COLOURS:
            colour = _EDGE_COLOURS[edge.style]
            links.append(f"  linkStyle {index} stroke:{colour},color:{colour}")
    for key in sorted(used):
        fill, border, text = _key_colours(key)
        lines.append(f"  classDef {_class(key)} fill:{fill},stroke:{border},color:{text}")
    lines.extend(styles)
    lines.extend(links)
    return "\n".join(lines) + "\n"


def _node(graph: WorkflowGraph, node: Node, ids: Names) -> str:
    if node.role in _ROLES:
        opening, closing = _ROLES[node.role]
        text = {"start": "start", "end": "end"}.get(node.role, node.text)
        return f'{ids[node.id]}{opening}"{_text(text)}"{closing}'
    state = graph.states.get(node.ref) if graph.states is not None and node.ref else None
    opening, closing = (
        _HEADER if node.header else _SHAPES.get(node.kind) or _SHAPES.get(node.type, ("[", "]"))
    )
    lines = [node.text, node.detail, f"if {node.condition}" if node.condition else "", state_line(state)]
    label = "<br>".join(_text(line) for line in lines if line)
    return f'{ids[node.id]}{opening}"{label}"{closing}'


def _node_style(graph: WorkflowGraph, node: Node, coloured: bool) -> tuple[str | None, str]:
    """The node's status class, and its own style (a dashed border for ``if``, a kind's accent)."""
    if node.role != "task":
        return None, ""
    state = graph.states.get(node.ref) if graph.states is not None and node.ref else None
    key = status_key(state, coloured)
    extra = []
    if node.condition is not None:
        extra.append("stroke-dasharray:4 3")
    accent = _ACCENTS.get(node.kind) or _ACCENTS.get(node.type)
    if accent and not coloured:
        extra.append(f"stroke:{accent},stroke-width:2px")
    return key, ",".join(extra)


def _group_style(graph: WorkflowGraph, group: Group, coloured: bool) -> str:
    border = "#dc2626" if group.role == "catch" else "#9ca3af"
    if coloured and group.role == "task" and group.ref is not None:
        state = graph.states.get(group.ref) if graph.states is not None else None
        border = node_colours(state, True)[1]
    dashed = ",stroke-dasharray:4 3" if group.role == "catch" else ""
    return f"fill:#fafafa,stroke:{border}{dashed}"


def _key_colours(key: str) -> tuple[str, str, str]:
    state = None if key == "not-started" else NodeState(key.replace("-", "_"))
    return node_colours(state, True)


def _class(key: str) -> str:
    return "st_" + key.replace("-", "_")


def _text(text: str) -> str:
    """Label text inside double quotes: Mermaid's entity codes for what it would read as markup."""
    return _SPECIAL.sub(lambda m: _ENTITIES[m.group()], text)
