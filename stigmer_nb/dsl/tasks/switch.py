"""``switch``: the first case whose ``when`` holds picks the flow directive; one case may be the default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..document import pointer_join
from ..expressions import truthy
from ..model import SwitchCase, SwitchSpec
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> SwitchSpec:
    """``switch: [- case: {when, then}]``: at most one case without ``when`` (the default)."""
    cases = body["switch"]
    ptr = pointer_join(pointer, "switch")
    if not isinstance(cases, list) or not cases:
        c.add(ptr, "switch must be a non-empty list of `- caseName: {when, then}`")
        return SwitchSpec(cases=())
    nodes: list[SwitchCase] = []
    defaults: list[str] = []
    seen: set[str] = set()
    for i, case in enumerate(cases):
        case_ptr = pointer_join(ptr, i)
        if not isinstance(case, Mapping) or len(case) != 1:
            c.add(case_ptr, "each switch case is a single-key map `- caseName: {when, then}`")
            continue
        ((case_name, spec),) = case.items()
        case_ptr = pointer_join(case_ptr, case_name)
        if case_name in seen:
            c.add(case_ptr, f"duplicate switch case {case_name!r}")
        seen.add(case_name)
        spec = c.mapping(case_ptr, spec, f"switch case {case_name!r} ({{when, then}})")
        if spec is None:
            continue
        c.keys(case_ptr, spec, ("when", "then"), f"switch case {case_name!r}", {"if": "; use `when`"})
        if "when" in spec:
            c.expression(pointer_join(case_ptr, "when"), spec["when"], bare=True, names=scope.names)
        else:
            defaults.append(case_name)
        if c.need(case_ptr, spec, "then", f"switch case {case_name!r}"):
            c.flow(pointer_join(case_ptr, "then"), spec["then"], scope.siblings)
        then = spec.get("then")
        nodes.append(
            SwitchCase(
                name=str(case_name),
                # Where a failing `when` is reported (the case's name, not its position).
                ref=pointer_join(pointer, "switch", case_name),
                when=spec.get("when"),
                then=then if isinstance(then, str) else None,
            )
        )
    if len(defaults) > 1:
        c.add(ptr, f"at most one switch case may omit `when` (the default); found {', '.join(defaults)}")
    return SwitchSpec(cases=tuple(nodes))


async def run(step: Step) -> Outcome:
    """The input passes through; the chosen case's ``then`` (or the default's) is the directive."""
    default: str | None = None
    for case in step.task.spec.cases:
        if case.when is None:
            default = case.then
            continue
        if truthy(step.engine.eval_field(case.when, step.data, step.args, case.ref)):
            return step.data, case.then
    return step.data, default


def from_stigmer(t: SpecTask) -> dict[str, Any] | None:
    """``SWITCH``: ``cases: [{name, when, then}]`` (an empty ``when`` is the default)."""
    t.fields("cases")
    cases = []
    for _, case in t.items("cases", fields=("name", "when", "then")):
        if case is None:
            continue
        name = t.string("name", within=case)
        then = t.string("then", within=case)
        spec: dict[str, Any] = {}
        if case.has("when"):  # protojson's empty `when` is the default case
            spec["when"] = t.string("when", within=case)
        spec["then"] = then
        cases.append({name: spec})
    return {"switch": cases}


TYPE = TaskType("switch", ("switch",), check, run, {"SWITCH": from_stigmer})
