"""Notebook rendering of executions and links (live widgets build on these static views)."""

from .static import execution_bundle, execution_html, temporal_ui_link

__all__ = ["execution_bundle", "execution_html", "temporal_ui_link"]
