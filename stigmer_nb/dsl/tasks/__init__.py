"""One module per DSL task type, each holding its check, its run and its Stigmer mapping."""

from __future__ import annotations

from collections.abc import Mapping

from . import call, do, emit, for_, fork, listen, raise_, run, set_, switch, try_, wait
from .contract import Outcome, Step, TaskType

__all__ = ["TYPES", "Outcome", "Step", "TaskType"]

TYPES: Mapping[str, TaskType] = {
    module.TYPE.name: module.TYPE
    for module in (call, do, emit, for_, fork, listen, raise_, run, set_, switch, try_, wait)
}
"""Task type name (``set``, ``call`` …) → what checks and runs it."""
