"""One entry point for documents: load, convert a Stigmer WorkflowSpec if given, validate."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .document import is_workflow_spec, load_source
from .validate import validate_document

__all__ = ["parse_workflow"]


_CACHE_SIZE = 64
_cache: OrderedDict[str, tuple[dict[str, Any], dict[str, Any] | None]] = OrderedDict()
_cache_lock = threading.Lock()


def parse_workflow(
    source: str | bytes | Path | Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(dsl_document, workflow_spec_or_None)`` for a path, YAML/JSON text (str or UTF-8 bytes) or a dict.

    Raises ``DSLValidationError`` listing every problem; nothing is stored or started. The same
    text submitted again (a notebook cell re-run, a load test) is parsed once.
    """
    if isinstance(source, str) and "\n" in source:
        with _cache_lock:
            hit = _cache.get(source)
            if hit is not None:
                _cache.move_to_end(source)
        if hit is not None:
            return copy.deepcopy(hit)
        result = _parse(source)
        with _cache_lock:
            _cache[source] = copy.deepcopy(result)
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return result
    return _parse(source)


def _parse(source: str | bytes | Path | Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    loaded = load_source(source)
    spec = None
    if is_workflow_spec(loaded.data):
        from ..runner.converter import convert_spec

        spec = loaded.data
        loaded = load_source(convert_spec(spec))
    validate_document(loaded)
    return loaded.data, spec
