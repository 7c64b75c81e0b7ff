"""Colours and small HTML helpers shared by the widgets, readable in JupyterLab's light and dark themes.

Fills (badges, bars, progress) keep the status colours: they are mid-tones that stand out on a
light and on a dark background alike, and text on them is white. Text is never painted in a fixed
colour: ``ink`` mixes the colour with the theme's own font colour (``--jp-ui-font-color1``, black
outside JupyterLab), which darkens it on a light background and lightens it on a dark one. Muted
text, borders and tracks use JupyterLab's variables with a light-theme fallback.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = [
    "BORDER",
    "ERROR",
    "MUTED",
    "PHASE_COLOURS",
    "STATUS_COLOURS",
    "TRACK",
    "WAITING",
    "ink",
    "json_html",
]

PHASE_COLOURS = {
    "EXECUTION_PENDING": "#6b7280",
    "EXECUTION_IN_PROGRESS": "#2563eb",
    "EXECUTION_COMPLETED": "#16a34a",
    "EXECUTION_FAILED": "#dc2626",
    "EXECUTION_CANCELLED": "#d97706",
    "EXECUTION_PAUSED": "#7c3aed",
    "EXECUTION_TERMINATED": "#9f1239",
}
STATUS_COLOURS = {
    "WORKFLOW_TASK_PENDING": "#6b7280",
    "WORKFLOW_TASK_IN_PROGRESS": "#2563eb",
    "WORKFLOW_TASK_COMPLETED": "#16a34a",
    "WORKFLOW_TASK_FAILED": "#dc2626",
    "WORKFLOW_TASK_SKIPPED": "#9ca3af",
}


def ink(colour: str, share: int = 70) -> str:
    """CSS declarations for *text* in ``colour``: ``share`` percent of it, the rest the theme's
    font colour, so it contrasts with the background in a light and in a dark theme alike.

    (A browser without ``color-mix``, none that runs JupyterLab 4, shows the inherited text colour.)
    """
    return f"color:{colour};color:color-mix(in srgb,{colour} {share}%,var(--jp-ui-font-color1,#000))"


MUTED = "color:var(--jp-ui-font-color2,#6b7280)"
"""Style of secondary text (ids, counts, notes)."""
ERROR = "#dc2626"
WAITING = "#b45309"
TRACK = "var(--jp-layout-color2,#e5e7eb)"
"""Background of an empty progress bar or timeline track."""
BORDER = "var(--jp-border-color2,#e5e7eb)"

_JSON_LIMIT = 4000


def json_html(value: Any, limit: int = _JSON_LIMIT, *, hint: str = "use .output / .input") -> str:
    """``value`` as indented JSON, escaped for HTML, cut after ``limit`` characters."""
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit:,} more characters; {hint})"
    return html.escape(text)
