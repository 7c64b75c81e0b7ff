"""``try``/``catch``: errors matching the filter are handled by ``catch.do`` or retried by its policy."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow

from ..document import pointer_join
from ..expressions import truthy
from ..limits import LimitExceeded
from ..model import CatchSpec, TrySpec
from ..problems import WorkflowProblem, matches_filter
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]

_CATCH_KEYS = ("errors", "as", "when", "exceptWhen", "retry", "do")
# The spec's error filter spells `details`; accept both spellings.
_ERROR_FILTER = ("type", "status", "instance", "title", "detail", "details")


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> TrySpec:
    """``try: [tasks]`` and ``catch: {errors, as, when, exceptWhen, retry, do}``."""
    try_ = c.task_list(pointer_join(pointer, "try"), body["try"], scope)
    node = TrySpec(try_=try_, catch=CatchSpec("error", None, None, None, None, None))
    if "catch" not in body:
        c.add(pointer, "try needs a `catch` beside it (an empty `catch: {}` catches every error)")
        return node
    ptr = pointer_join(pointer, "catch")
    catch = c.mapping(ptr, body["catch"], "catch")
    if catch is None:
        return node
    c.keys(ptr, catch, _CATCH_KEYS, "catch")
    if "as" in catch:
        c.variable(pointer_join(ptr, "as"), catch["as"], "catch.as")
    inner = scope.bind(catch.get("as", "error"))
    if "errors" in catch:
        _error_filter(c, pointer_join(ptr, "errors"), catch["errors"])
    for key in ("when", "exceptWhen"):
        if key in catch:
            c.expression(pointer_join(ptr, key), catch[key], bare=True, names=inner.names)
    if "retry" in catch:
        retry = catch["retry"]
        if isinstance(retry, str):
            c.reference(pointer_join(ptr, "retry"), retry, "retries")
        else:
            c.retry(pointer_join(ptr, "retry"), retry, inner.names)
    do = c.task_list(pointer_join(ptr, "do"), catch["do"], inner) if "do" in catch else None
    errors = catch.get("errors")
    return TrySpec(
        try_=try_,
        catch=CatchSpec(
            as_=str(catch.get("as", "error")),
            errors_with=errors.get("with") if isinstance(errors, Mapping) else None,
            when=catch.get("when"),
            except_when=catch.get("exceptWhen"),
            retry=catch.get("retry"),
            do=do,
        ),
    )


def _error_filter(c: Checker, pointer: str, errors: Any) -> None:
    from ..check import ERROR_HINTS

    errors = c.mapping(pointer, errors, "catch.errors ({with: {type, status}})")
    if errors is None:
        return
    c.keys(pointer, errors, ("with",), "catch.errors")
    if "with" in errors:
        attributes = c.mapping(pointer_join(pointer, "with"), errors["with"], "catch.errors.with")
        if attributes is not None:
            c.keys(pointer_join(pointer, "with"), attributes, _ERROR_FILTER, "catch.errors.with", ERROR_HINTS)


async def run(step: Step) -> Outcome:
    """Run ``try``; on a caught error run ``catch.do`` (output), or wait and run ``try`` again."""
    spec: TrySpec = step.task.spec
    catch = spec.catch
    retry = _retry_policy(step, catch.retry)
    attempt = 1
    first_started = workflow.now()
    while True:
        inner = {**step.scope, "__attempt__": attempt}
        try:
            return await step.run_list(spec.try_, step.data, inner), None
        except LimitExceeded:
            raise  # retrying or handling cannot help: the execution fails
        except WorkflowProblem as err:
            caught = err.problem
            if not matches_filter(caught, catch.errors_with):
                raise
            err_args = step.variables(**{catch.as_: caught})
            if catch.when is not None and not truthy(step.field(catch.when, args=err_args)):
                raise
            if catch.except_when is not None and truthy(step.field(catch.except_when, args=err_args)):
                raise
            handler_scope = {**step.scope, catch.as_: caught}
            if retry is not None:
                delay = _retry_delay(step, retry, attempt, err_args, first_started)
                if delay is None:
                    raise
                if catch.do is not None:
                    await step.run_list(catch.do, step.data, handler_scope)
                if delay > timedelta(0):
                    await workflow.sleep(delay)
                attempt += 1
                continue
            if catch.do is not None:
                return await step.run_list(catch.do, step.data, handler_scope), None
            return step.data, None


def _retry_policy(step: Step, spec: Any) -> Mapping[str, Any] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        named = (step.engine.use.get("retries") or {}).get(spec)
        if named is None:
            raise WorkflowProblem.of(
                "configuration", f"no retry policy {spec!r} in use.retries", instance=step.ref
            )
        return named
    return spec


def _retry_delay(
    step: Step, policy: Mapping[str, Any], attempt: int, args: Mapping[str, Any], first_started: datetime
) -> timedelta | None:
    """The delay before retry number ``attempt``, or None when the policy says stop."""
    engine, ref = step.engine, step.ref
    if "when" in policy and not truthy(step.field(policy["when"], args=args)):
        return None
    if "exceptWhen" in policy and truthy(step.field(policy["exceptWhen"], args=args)):
        return None
    limit = policy.get("limit") or {}
    count = (limit.get("attempt") or {}).get("count")
    if count is not None and attempt > int(count):  # count limits retries, not runs (sdk-java)
        return None
    if "duration" in limit:
        budget = engine.duration(limit["duration"], ref)
        if workflow.now() - first_started >= budget:
            return None
    base = engine.duration(policy["delay"], ref) if "delay" in policy else timedelta(0)
    backoff = policy.get("backoff") or {}
    if "exponential" in backoff:
        delay = base * (2**attempt)
    elif "linear" in backoff:
        delay = base * attempt
    else:
        delay = base
    jitter = policy.get("jitter")
    if isinstance(jitter, Mapping):
        low = engine.duration(jitter.get("from", {"seconds": 0}), ref)
        high = engine.duration(jitter.get("to", {"seconds": 0}), ref)
        if high > low:
            delay += low + (high - low) * workflow.random().random()
        else:
            delay += low
    return delay


def from_stigmer(t: SpecTask) -> dict[str, Any] | None:
    """``TRY``: ``try`` tasks and ``catch: {as, do}``."""
    t.fields("try", "catch")
    out: dict[str, Any] = {"try": t.subtasks("try", t.config)}
    catch: dict[str, Any] = {}
    block = t.message("catch", ("as", "do"))
    if block is not None:
        if block.has("as"):
            catch["as"] = t.string("as", within=block)
        if block.has("do"):
            catch["do"] = t.subtasks("do", block)
    out["catch"] = catch
    return out


TYPE = TaskType("try", ("try", "catch"), check, run, {"TRY": from_stigmer})
