"""A workflow document as a diagram: Mermaid, Graphviz DOT and SVG, optionally coloured by a run.

``for_document(doc)`` draws a document (YAML text, a path, a dict, a Stigmer WorkflowSpec);
``for_execution(doc, task_states)`` colours it by an execution's task runs. The result shows
itself in a notebook (SVG) and renders with ``.mermaid``, ``.dot`` and ``.svg``.
"""

from __future__ import annotations

from .dot import to_dot
from .mermaid import to_mermaid
from .model import EDGE_STYLES, Edge, Group, Node, WorkflowGraph, css_id, for_document, for_execution
from .states import NodeState, states_from_tasks
from .svg import render_svg, warm_up

__all__ = [
    # building
    "WorkflowGraph",
    "for_document",
    "for_execution",
    # its parts
    "EDGE_STYLES",
    "Edge",
    "Group",
    "Node",
    "css_id",
    # run states
    "NodeState",
    "states_from_tasks",
    # rendering
    "render_svg",
    "to_dot",
    "to_mermaid",
    "warm_up",
]
