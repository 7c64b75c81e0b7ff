"""``do``: a nested task list run in order; its output is the last task's output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..document import pointer_join
from ..model import DoSpec
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ..check import Checker, Scope

__all__ = ["TYPE"]


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> DoSpec:
    """``do: [tasks]`` in order."""
    return DoSpec(do=c.task_list(pointer_join(pointer, "do"), body["do"], scope))


async def run(step: Step) -> Outcome:
    """The list (``exit`` inside leaves only this ``do``)."""
    return await step.run_list(step.task.spec.do, step.data), None


TYPE = TaskType("do", ("do",), check, run)
