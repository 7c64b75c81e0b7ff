"""One entry point for documents: load, convert a Stigmer WorkflowSpec if given, validate."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .document import is_workflow_spec, load_source
from .validate import validate_document

__all__ = ["parse_workflow"]


def parse_workflow(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(dsl_document, workflow_spec_or_None)`` for a path, YAML/JSON text or a dict.

    Raises ``DSLValidationError`` listing every problem; nothing is stored or started.
    """
    loaded = load_source(source)
    spec = None
    if is_workflow_spec(loaded.data):
        from ..runner.converter import convert_spec

        spec = loaded.data
        loaded = load_source(convert_spec(spec))
    validate_document(loaded)
    return loaded.data, spec
