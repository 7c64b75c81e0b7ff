"""The batch view: one progress bar for the executions a ``lab.map`` started."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..batch import Batch

__all__ = ["batch_html", "display_batch"]


def batch_html(batch: Batch) -> str:
    """A static progress bar with counts per phase (what a saved notebook keeps)."""
    counts = batch.counts()
    total = len(batch)
    finished = sum(counts.get(k, 0) for k in ("completed", "failed", "cancelled", "terminated"))
    width = int(100 * finished / total) if total else 100
    text = ", ".join(f"{n} {html.escape(k)}" for k, n in sorted(counts.items()))
    return (
        f"<div><b>batch {html.escape(batch.id)}</b> {finished}/{total} finished ({text})"
        f"<div style='background:#e5e7eb;height:8px;width:320px'>"
        f"<div style='background:#2563eb;height:8px;width:{width}%'></div></div></div>"
    )


def display_batch(batch: Batch) -> None:
    """Show the batch's progress."""
    from IPython.display import HTML, display

    display(HTML(batch_html(batch)))
