"""Errors as RFC 7807 problem details with the spec's standard types."""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ERROR_BASE",
    "STANDARD_STATUS",
    "WorkflowProblem",
    "error_kind",
    "matches_filter",
    "problem",
    "same_type",
]

ERROR_BASE = "https://serverlessworkflow.io/spec/1.0.0/errors/"
"""Prefix of the standard error types, as the spec's error tables spell it."""

STANDARD_STATUS = {
    "configuration": 400,
    "validation": 400,
    "expression": 400,
    "authentication": 401,
    "authorization": 403,
    "timeout": 408,
    "communication": 500,
    "runtime": 500,
}
"""Standard error kinds and their default status."""

# The spec's own materials spell one standard type several ways; these all name <kind>.
_SPELLINGS = re.compile(
    r"^https?://serverlessworkflow\.io/(?:spec/[^/]+/errors|dsl/errors/types|errors/types|spec/[^/]+/errors/types)/"
    r"(?P<kind>[a-z]+)/?$"
)


def problem(
    kind: str,
    detail: str | None = None,
    *,
    status: int | None = None,
    title: str | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    """A problem-details object of a standard ``kind`` (``expression``, ``timeout`` …)."""
    out: dict[str, Any] = {
        "type": ERROR_BASE + kind,
        "status": status if status is not None else STANDARD_STATUS.get(kind, 500),
        "title": title or f"{kind.capitalize()} error",
    }
    if detail is not None:
        out["detail"] = detail
    if instance is not None:
        out["instance"] = instance
    return out


def error_kind(type_uri: str | None) -> str | None:
    """``timeout`` for any spelling of the standard timeout type; None for other types."""
    if not type_uri:
        return None
    match = _SPELLINGS.match(type_uri.strip())
    if match and match.group("kind") in STANDARD_STATUS:
        return match.group("kind")
    return None


def same_type(a: str | None, b: str | None) -> bool:
    """True when two error types are equal, treating spellings of one standard type as equal."""
    if a == b:
        return True
    kind_a, kind_b = error_kind(a), error_kind(b)
    return kind_a is not None and kind_a == kind_b


def matches_filter(error: dict[str, Any], with_: dict[str, Any] | None) -> bool:
    """``catch.errors.with``: every given field equals the error's (absent fields match anything)."""
    for key, expected in (with_ or {}).items():
        actual = error.get(key)
        if key == "type":
            if not same_type(str(expected), actual if isinstance(actual, str) else None):
                return False
        elif key == "status":
            try:
                if int(expected) != int(actual):
                    return False
            except (TypeError, ValueError):
                return False
        elif actual != expected:
            return False
    return True


class WorkflowProblem(Exception):
    """Raised inside the engine to carry a problem through task boundaries."""

    def __init__(self, details: dict[str, Any]) -> None:
        self.problem = details
        title = details.get("title") or "error"
        detail = details.get("detail")
        super().__init__(f"{title}: {detail}" if detail else str(title))

    @classmethod
    def of(cls, kind: str, detail: str, *, instance: str | None = None, **kw: Any) -> WorkflowProblem:
        """Shorthand for ``WorkflowProblem(problem(kind, detail, instance=...))``."""
        return cls(problem(kind, detail, instance=instance, **kw))
