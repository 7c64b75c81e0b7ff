"""``set``: the task's output is a mapping whose ``${}`` strings are evaluated, or one expression."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..document import pointer_join
from ..expressions import is_expression
from ..model import SetSpec
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> SetSpec:
    """``set``: a mapping whose ``${}`` strings are evaluated, or one ``${}`` expression."""
    from ..check import describe

    value = body["set"]
    ptr = pointer_join(pointer, "set")
    if isinstance(value, str) and not is_expression(value):
        c.add(ptr, "set must be a mapping or a ${ } expression; a plain string would be jq")
    elif not isinstance(value, Mapping | str):
        c.add(ptr, f"set must be a mapping (or one ${{ }} expression), not {describe(value)}")
    else:
        c.expression(ptr, value, bare=False, names=scope.names)
    return SetSpec(value=value)


async def run(step: Step) -> Outcome:
    """The evaluated value."""
    value = step.task.spec.value
    if isinstance(value, str):
        return step.field(value), None
    return step.value(value), None


def from_stigmer(t: SpecTask) -> dict[str, Any] | None:
    """``SET``: ``variables`` (strings, possibly ``${}``) → ``set``."""
    t.fields("variables")
    variables = t.mapping("variables", required=True)
    if variables is None:
        return None
    for key, value in variables.items():
        if not isinstance(value, str):
            # map<string, string>: a number here would be refused by protojson too.
            t.fail(
                pointer_join(t.config.at("variables"), key),
                f"variable {key!r} must be a string, not {value!r}",
            )
    return {"set": dict(variables)}


TYPE = TaskType("set", ("set",), check, run, {"SET": from_stigmer})
