"""Validation is compilation: a document is checked once, every problem at once, into task nodes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import DSLValidationError
from .check import SUPPORTED_DSL, Checker, iter_tasks
from .document import LoadedDocument
from .model import Workflow

__all__ = [
    "SUPPORTED_DSL",
    "check_document",
    "compile_checked",
    "compile_document",
    "iter_tasks",
    "validate_document",
]

_CACHE_SIZE = 128
_compiled: OrderedDict[bytes, Workflow] = OrderedDict()
_compiled_lock = threading.Lock()


def compile_document(loaded: LoadedDocument) -> Workflow:
    """The document's nodes; raises ``DSLValidationError`` listing every problem."""
    checker = Checker(loaded)
    workflow = checker.document()
    if checker.problems:
        raise DSLValidationError(_in_order(checker.problems), source=loaded.source)
    return workflow


def check_document(loaded: LoadedDocument) -> list[dict[str, Any]]:
    """Every problem in ``loaded``, in document order; empty when it is valid.

    Each is a problem-details dict (``type`` …/errors/validation, ``status`` 400, ``title``,
    ``detail``, ``instance`` = JSON pointer) plus ``line`` and ``column`` when the text is known.
    """
    checker = Checker(loaded)
    checker.document()
    return _in_order(checker.problems)


def validate_document(loaded: LoadedDocument) -> LoadedDocument:
    """Raise ``DSLValidationError`` listing every problem, or return ``loaded`` unchanged."""
    compile_document(loaded)
    return loaded


def compile_checked(document: Mapping[str, Any], prefix: str = "") -> Workflow | list[dict[str, Any]]:
    """Nodes for a document that was validated when submitted (what the workflow runs), cached.

    jq and schemas are not compiled again; what is wrong with the shape comes back as the
    problems instead (a document handed to the engine directly, unvalidated). ``prefix`` puts the
    task references under the task that runs the document (``run: workflow``).
    """
    key = prefix.encode() + b"\0" + orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
    with _compiled_lock:
        hit = _compiled.get(key)
        if hit is not None:
            _compiled.move_to_end(key)
            return hit
    checker = Checker(LoadedDocument(dict(document)), expressions=False, prefix=prefix)
    workflow = checker.document()
    if checker.problems:
        return _in_order(checker.problems)
    with _compiled_lock:
        _compiled[key] = workflow
        while len(_compiled) > _CACHE_SIZE:
            _compiled.popitem(last=False)
    return workflow


def _in_order(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Document order reads best; problems without a position (dict input) keep the walk's order.
    return sorted(problems, key=lambda p: (p.get("line", 0), p.get("column", 0)))
