"""``raise``: fail with an error, inline or named in ``use.errors``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..document import pointer_join
from ..expressions import is_expression
from ..model import RaiseSpec
from ..problems import ERROR_BASE, STANDARD_STATUS, WorkflowProblem, error_kind
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> RaiseSpec:
    """``raise: {error: {type, status, ...} | name in use.errors}``."""
    ptr = pointer_join(pointer, "raise")
    spec = c.mapping(ptr, body["raise"], "raise")
    if spec is None:
        return RaiseSpec(error=None)
    c.keys(ptr, spec, ("error",), "raise")
    if not c.need(ptr, spec, "error", "raise (an inline error or a name from use.errors)"):
        return RaiseSpec(error=None)
    error = spec["error"]
    if isinstance(error, str):
        c.reference(pointer_join(ptr, "error"), error, "errors")
    else:
        c.error(pointer_join(ptr, "error"), error, scope.names)
    return RaiseSpec(error=error)


async def run(step: Step) -> Outcome:
    """Raise the error as a problem whose ``instance`` is this task."""
    error = step.task.spec.error
    if isinstance(error, str):
        named = (step.engine.use.get("errors") or {}).get(error)
        if named is None:
            raise WorkflowProblem.of("configuration", f"no error {error!r} in use.errors", instance=step.ref)
        error = named
    details = step.value(dict(error))
    type_ = str(details.get("type") or "")
    kind = error_kind(type_)
    try:
        status = int(details.get("status", 500))
    except (TypeError, ValueError):
        status = 500
    out = {
        "type": type_,
        "status": status,
        "title": details.get("title") or (f"{kind.capitalize()} error" if kind else "Error"),
    }
    if details.get("detail") is not None:
        out["detail"] = details["detail"]
    out["instance"] = step.ref
    raise WorkflowProblem(out)


def error_type(error: str) -> dict[str, Any]:
    """``type`` and ``status`` for ``RAISE.error`` (the rule is in ``convert_spec``'s docstring)."""
    if is_expression(error):
        return {"type": error, "status": 500}
    if _URI.match(error):
        kind = error_kind(error)
        return {"type": error, "status": STANDARD_STATUS[kind] if kind else 500}
    kind = error.strip().lower()
    if kind in STANDARD_STATUS:
        return {"type": ERROR_BASE + kind, "status": STANDARD_STATUS[kind]}
    return {"type": ERROR_BASE + "runtime", "status": 500}


def from_stigmer(t: SpecTask) -> dict[str, Any] | None:
    """``RAISE``: ``error`` (a standard kind, a URI or an expression) and ``message``."""
    t.fields("error", "message")
    error = t.string("error")
    if error is None:
        return None
    out: dict[str, Any] = {**error_type(error), "title": error}
    if t.config.has("message"):
        out["detail"] = t.string("message")
    return {"raise": {"error": out}}


TYPE = TaskType("raise", ("raise",), check, run, {"RAISE": from_stigmer})
