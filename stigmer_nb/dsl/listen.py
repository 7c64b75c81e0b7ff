"""``listen``: consuming delivered CloudEvents with the one / any / all / until strategies."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow

from .expressions import ExpressionError, JqLimits, evaluate_field, is_expression, strip_expression, truthy
from .problems import WorkflowProblem

if TYPE_CHECKING:
    from .interpreter import Engine

__all__ = ["EventInbox", "consume", "event_matches"]


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


class _Correlation:
    """``correlate`` keys of a listen's filters: values fixed by ``expect``, or learned from the first event."""

    def __init__(
        self, filters: list[Mapping[str, Any]], data: Any, args: Mapping[str, Any], ref: str, engine: Engine
    ) -> None:
        self.engine, self.args, self.ref = engine, args, ref
        self.expected: dict[str, Any] = {}
        for spec in filters:
            for key, rule in ((spec or {}).get("correlate") or {}).items():
                if isinstance(rule, Mapping) and "expect" in rule:
                    self.expected[key] = engine.eval_value(rule["expect"], data, args, ref)

    def match(self, event: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any] | None:
        """The keys ``event`` would fix (empty when none), or None when it does not correlate."""
        learned: dict[str, Any] = {}
        for key, rule in ((spec or {}).get("correlate") or {}).items():
            value = self.engine.eval_field(rule["from"], event, self.args, self.ref)
            if key in self.expected:
                if value != self.expected[key]:
                    return None
            elif key in learned and learned[key] != value:
                return None
            else:
                learned[key] = value
        return learned

    def commit(self, learned: Mapping[str, Any]) -> None:
        """A consumed event's values become what later events must correlate with."""
        self.expected.update(learned)


async def consume(
    inbox: EventInbox,
    to: Mapping[str, Any],
    data: Any,
    args: Mapping[str, Any],
    ref: str,
    engine: Engine,
) -> list[dict[str, Any]]:
    """Wait for and consume events per ``to``.

    Events delivered while the listen waits count, and so do events delivered up to the run's
    ``event_window`` before it began; an event consumed by one listen is not seen by another.
    """
    window = timedelta(seconds=engine.pace.limits.event_window)
    since = workflow.now() - window
    kind, filters = _strategy(to)
    until = to.get("until")
    until_kind, until_filters = _strategy(until) if isinstance(until, Mapping) else ("", [])
    correlation = _Correlation([*filters, *until_filters], data, args, ref, engine)
    consumed: list[dict[str, Any]] = []
    seen: set[int] = set()
    """Events this listen has examined and passed over (or taken)."""

    def fresh() -> list[tuple[int, dict[str, Any]]]:
        return [
            (i, e)
            for i, e in enumerate(inbox.events)
            if i not in seen and i not in inbox.consumed and inbox.arrived[i] >= since
        ]

    def check(event: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            if not event_matches(event, spec, args, engine.pace.jq):
                return None
        except ExpressionError as exc:
            raise WorkflowProblem.of("expression", str(exc), instance=ref) from None
        return correlation.match(event, spec)

    def take(index: int, learned: Mapping[str, Any]) -> None:
        inbox.consumed.add(index)
        correlation.commit(learned)

    def first_match(event: Mapping[str, Any], specs: list[Mapping[str, Any]]) -> dict[str, Any] | None:
        if not specs:
            return {}
        for spec in specs:
            learned = check(event, spec)
            if learned is not None:
                return learned
        return None

    if kind == "one" or (kind == "any" and until is None):

        def one() -> bool:
            for i, event in fresh():
                learned = first_match(event, filters)
                if learned is not None:
                    take(i, learned)
                    consumed.append(event)
                    return True
                seen.add(i)
            return False

        await workflow.wait_condition(one)
        return consumed

    if kind == "all":
        remaining = list(range(len(filters)))

        def progress() -> bool:
            for i, event in fresh():
                seen.add(i)
                for slot in list(remaining):
                    learned = check(event, filters[slot])
                    if learned is not None:
                        remaining.remove(slot)
                        take(i, learned)
                        consumed.append(event)
                        break
            return not remaining

        await workflow.wait_condition(progress)
        return consumed

    # any + until: collect matching events until the condition holds.

    def done() -> bool:
        for i, event in fresh():
            seen.add(i)
            if until_kind:
                learned = first_match(event, until_filters)
                if learned is not None:
                    take(i, learned)
                    return True  # events that satisfy `until` are not part of the output
            learned = first_match(event, filters)
            if learned is None:
                continue
            take(i, learned)
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


class EventInbox:
    """Events delivered to this workflow (by signal), when they came, and which a listen consumed."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.arrived: list[datetime] = []
        """Workflow time each event was delivered (replays give the same times)."""
        self.consumed: set[int] = set()
        """Events a listen took: each event counts for one listen at most."""

    def deliver(self, event: dict[str, Any]) -> None:
        """Signal handler body: keep the event for listeners."""
        self.events.append(event)
        self.arrived.append(workflow.now())

    def pending(self) -> list[tuple[dict[str, Any], datetime]]:
        """Events no listen consumed, with when they came (what a continued run takes along)."""
        return [
            (e, at)
            for i, (e, at) in enumerate(zip(self.events, self.arrived, strict=True))
            if i not in self.consumed
        ]

    def restore(self, events: list[dict[str, Any]], arrived: list[str]) -> None:
        """Events a previous run of this execution had not consumed."""
        self.events[:0] = events
        self.arrived[:0] = [datetime.fromisoformat(at) for at in arrived]
        self.consumed = {i + len(events) for i in self.consumed}

    async def listen(
        self, to: Mapping[str, Any], data: Any, args: Mapping[str, Any], ref: str, engine: Engine
    ) -> list[dict[str, Any]]:
        """Consume events per ``to`` (``one``/``any``/``all``, optional ``until``)."""
        return await consume(self, to, data, args, ref, engine)
