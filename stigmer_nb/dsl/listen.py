"""``listen``: consuming delivered CloudEvents with the one / any / all / until strategies."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from temporalio import workflow

from .expressions import ExpressionError, JqLimits, evaluate_field, is_expression, strip_expression, truthy
from .problems import WorkflowProblem

if TYPE_CHECKING:
    from .interpreter import Engine, EventInbox

__all__ = ["consume", "event_matches"]


def event_matches(
    event: Mapping[str, Any],
    spec: Mapping[str, Any] | None,
    args: Mapping[str, Any],
    limits: JqLimits | None = None,
) -> bool:
    """An event filter ``{with: {attr: value}}``: equal values, regexes for strings, or expressions."""
    attrs = (spec or {}).get("with") or {}
    for key, expected in attrs.items():
        actual = event.get(key)
        if isinstance(expected, str) and is_expression(expected):
            # An expression filter runs on the attribute's value.
            if not truthy(evaluate_field(strip_expression(expected), actual, args, limits)):
                return False
        elif isinstance(expected, str) and isinstance(actual, str):
            if expected != actual and not _regex_match(expected, actual):
                return False
        elif isinstance(expected, Mapping) and isinstance(actual, Mapping):
            if not all(actual.get(k) == v for k, v in expected.items()):
                return False
        elif expected != actual:
            return False
    return True


def _regex_match(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return False


def _strategy(to: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]]]:
    if "one" in to:
        return "one", [to["one"] or {}]
    if "all" in to:
        return "all", list(to["all"] or [])
    if "any" in to:
        return "any", list(to["any"] or [])
    return "any", []


async def consume(
    inbox: EventInbox,
    to: Mapping[str, Any],
    data: Any,
    args: Mapping[str, Any],
    ref: str,
    engine: Engine,
) -> list[dict[str, Any]]:
    """Wait for and consume events per ``to``; only events delivered after the listen began count."""
    start = len(inbox.events)
    kind, filters = _strategy(to)
    until = to.get("until")
    consumed: list[dict[str, Any]] = []
    taken: set[int] = set()

    def fresh() -> list[tuple[int, dict[str, Any]]]:
        return [(i, e) for i, e in enumerate(inbox.events) if i >= start and i not in taken]

    def check(event: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
        try:
            return event_matches(event, spec, args, engine.pace.jq)
        except ExpressionError as exc:
            raise WorkflowProblem.of("expression", str(exc), instance=ref) from None

    if kind == "one" or (kind == "any" and until is None):

        def first() -> tuple[int, dict[str, Any]] | None:
            for i, event in fresh():
                if not filters or any(check(event, f) for f in filters):
                    return i, event
            return None

        await workflow.wait_condition(lambda: first() is not None)
        found = first()
        assert found is not None
        taken.add(found[0])
        return [found[1]]

    if kind == "all":
        remaining = list(range(len(filters)))

        def progress() -> bool:
            for i, event in fresh():
                for slot in list(remaining):
                    if check(event, filters[slot]):
                        remaining.remove(slot)
                        taken.add(i)
                        consumed.append(event)
                        break
            return not remaining

        await workflow.wait_condition(progress)
        return consumed

    # any + until: collect matching events until the condition holds.
    until_kind, until_filters = _strategy(until) if isinstance(until, Mapping) else ("", [])

    def done() -> bool:
        for i, event in fresh():
            taken.add(i)
            if until_kind and (not until_filters or any(check(event, f) for f in until_filters)):
                return True  # events that satisfy `until` are not part of the output
            if not filters or any(check(event, f) for f in filters):
                consumed.append(event)
                if isinstance(until, str):
                    try:
                        if truthy(evaluate_field(until, consumed, args, engine.pace.jq)):
                            return True
                    except ExpressionError as exc:
                        raise WorkflowProblem.of("expression", str(exc), instance=ref) from None
        return False

    await workflow.wait_condition(done)
    return consumed
