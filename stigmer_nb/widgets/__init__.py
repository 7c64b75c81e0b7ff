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
    "view_for",
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
    from .execution import ExecutionView, display_execution, execution_mimebundle, view_for
    from .render import render_execution
    from .static import execution_bundle, execution_html
    from .ui import TemporalUI, jupyter_ui_options, temporal_ui


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stigmer_nb.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
