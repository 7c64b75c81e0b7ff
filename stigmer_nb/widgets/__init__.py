"""Notebook rendering: the live execution view, the history dashboard, charts, the Temporal UI link."""

# Imports are lazy: ipywidgets and matplotlib load only when a widget or chart is first used.

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    # executions
    "ExecutionView",
    "display_execution",
    "execution_mimebundle",
    "render_execution",
    "render_timeline",
    "view_for",
    # the graph panel (``stigmer_nb.graph`` draws it)
    "graph_of",
    "render_graph",
    # batches
    "BatchView",
    "batch_view_for",
    "render_batch",
    # history
    "Dashboard",
    # charts (PNG bytes)
    "durations_png",
    "phase_counts_png",
    "throughput_png",
    "timeline_png",
    # Temporal UI
    "TemporalUI",
    "jupyter_ui_options",
    "temporal_ui",
    # static renderings
    "execution_bundle",
    "execution_html",
]

_LAZY = {
    "ExecutionView": ".execution",
    "display_execution": ".execution",
    "execution_mimebundle": ".execution",
    "view_for": ".execution",
    "render_execution": ".render",
    "render_timeline": ".timeline",
    "graph_of": ".execution",
    "render_graph": ".panels",
    "BatchView": ".batch",
    "batch_view_for": ".batch",
    "render_batch": ".batch",
    "Dashboard": ".dashboard",
    "durations_png": ".charts",
    "phase_counts_png": ".charts",
    "throughput_png": ".charts",
    "timeline_png": ".charts",
    "TemporalUI": ".ui",
    "jupyter_ui_options": ".ui",
    "temporal_ui": ".ui",
    "execution_bundle": ".static",
    "execution_html": ".static",
}

if TYPE_CHECKING:
    from .batch import BatchView, batch_view_for, render_batch
    from .charts import durations_png, phase_counts_png, throughput_png, timeline_png
    from .dashboard import Dashboard
    from .execution import ExecutionView, display_execution, execution_mimebundle, graph_of, view_for
    from .panels import render_graph
    from .render import render_execution
    from .static import execution_bundle, execution_html
    from .timeline import render_timeline
    from .ui import TemporalUI, jupyter_ui_options, temporal_ui


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stigmer_nb.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
