"""``for``: a ``do`` list once per item; each iteration gets the previous one's output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..document import pointer_join
from ..expressions import truthy
from ..model import ForSpec, TaskList
from ..problems import WorkflowProblem
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> ForSpec:
    """``for: {each, in, at}``, ``while``, ``do``: ``$each``/``$at`` exist inside only."""
    ptr = pointer_join(pointer, "for")
    spec = c.mapping(ptr, body["for"], "for")
    inner = scope
    if spec is not None:
        c.keys(ptr, spec, ("each", "in", "at"), "for")
        if c.need(ptr, spec, "in", "for (the list to loop over)"):
            c.expression(pointer_join(ptr, "in"), spec["in"], bare=True, names=scope.names)
        for key in ("each", "at"):
            if key in spec:
                c.variable(pointer_join(ptr, key), spec[key], f"for.{key}")
        inner = scope.bind(spec.get("each", "item"), spec.get("at", "index"))
    if "while" in body:
        c.expression(pointer_join(pointer, "while"), body["while"], bare=True, names=inner.names)
    do = TaskList.of(pointer_join(pointer, "do"), [])
    if "do" not in body:
        c.add(pointer, "for needs a `do` list beside `for`")
    else:
        do = c.task_list(pointer_join(pointer, "do"), body["do"], inner)
    spec = spec or {}
    return ForSpec(
        each=str(spec.get("each", "item")),
        at=str(spec.get("at", "index")),
        in_=spec.get("in"),
        while_=body.get("while"),
        do=do,
    )


async def run(step: Step) -> Outcome:
    """Iterate over a list, a mapping's entries, or ``range(n)`` for a count."""
    spec: ForSpec = step.task.spec
    pace = step.engine.pace
    items = step.field(spec.in_)
    if items is None:
        items = []
    elif isinstance(items, Mapping):
        pace.check_items(len(items), step.ref)
        items = list(items.items())
    elif isinstance(items, int) and not isinstance(items, bool):
        pace.check_items(items, step.ref)
        items = list(range(items))
    elif not isinstance(items, list):
        raise WorkflowProblem.of(
            "expression", f"for.in must yield a list, got {type(items).__name__}", instance=step.ref
        )
    pace.check_items(len(items), step.ref)
    data = step.data
    for index, item in enumerate(items):
        inner = {**step.scope, spec.each: item, spec.at: index}
        if spec.while_ is not None:
            loop = {k: v for k, v in inner.items() if not k.startswith("__")}
            condition = step.engine.arguments(loop, task=step.args["task"], input=step.args.get("input"))
            if not truthy(step.field(spec.while_, data, condition)):
                break
        data = await step.run_list(spec.do, data, inner)
    return data, None


def from_stigmer(t: SpecTask) -> dict[str, Any] | None:
    """``FOR``: ``each``, ``in``, ``do``."""
    t.fields("each", "in", "do")
    spec: dict[str, Any] = {}
    if t.config.has("each"):  # Stigmer's SDK leaves it out: the DSL's default `item` applies
        spec["each"] = t.string("each")
    spec["in"] = t.string("in")
    return {"for": spec, "do": t.subtasks("do", t.config)}


TYPE = TaskType("for", ("for", "while", "do"), check, run, {"FOR": from_stigmer})
